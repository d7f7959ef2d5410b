"""The WSGI entry point: `gunicorn -c hashtale/webhook/gunicorn.conf.py` (or `gunicorn hashtale.webhook.wsgi:app`)."""
from hashtale.webhook import create_app

app = create_app()
