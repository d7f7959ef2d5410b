"""The WSGI entry point: `gunicorn -c webhook/gunicorn.conf.py` (or `gunicorn webhook.wsgi:app`)."""
from webhook import create_app

app = create_app()
