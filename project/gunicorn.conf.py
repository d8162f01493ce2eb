# gunicorn settings for Mailroom: `gunicorn -c project/gunicorn.conf.py project.wsgi`.
# Command-line options still override these.

# Preview links carry their token in the path: the access log (off unless --access-logfile
# is given) writes it as /preview/<token>/.
logger_class = "project.logfilters.GunicornLogger"
