"""hashtale: hashtag suggestions and a short story for every photo post.

The one importable package of the distribution. The service's parts are its folders (webhook, worker, models,
training, inference, db, settings, review, monitoring); `cli.py` is the `hashtale` command. Importing this package
imports nothing else: the Triton image installs it with `models/` only.
"""
