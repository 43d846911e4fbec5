"""The gateway with the security check on every payment page, for gunicorn in the browser tests
(`gunicorn tests.web.challenged_wsgi:app`): the seam gateway/web/payment_page.py reads."""
from gateway import create_app

app = create_app()
app.config["CHALLENGE_EVERY_PAYMENT"] = True
