"""hashtale: hashtag suggestions and a short story for every photo post.

The one importable package of the distribution. The service's parts are its folders (webhook, worker, models,
training, inference, db, settings, review, monitoring); `cli.py` is the `hashtale` command, and the two commands
that use several parts at once sit beside it: `serve.py` (webhook, worker and beat as child processes) and `tag.py`
(one photo through the worker's pipeline in this process). Importing this package imports nothing else: the Triton
image installs it with `models/` only.
"""
