"""`gunicorn -w 1 --threads 4 'store_emulator.wsgi:app'`, configured from the environment."""
import os

from gateway.config import DEV_PRIVATE_KEY

from . import create_emulator_app

app = create_emulator_app(
    gateway_url=os.environ.get("EMULATOR_GATEWAY_URL", "http://127.0.0.1:5000"),
    private_key=os.environ.get("GATEWAY_PRIVATE_KEY") or DEV_PRIVATE_KEY,
    public_url=os.environ.get("EMULATOR_PUBLIC_URL") or None,
    credentials=(os.environ.get("EMULATOR_USERNAME", "user1"), os.environ.get("EMULATOR_PASSWORD", "password1")),
    answer_delay=float(os.environ.get("EMULATOR_STORE_DELAY") or 0),
    first_orderid=int(os.environ.get("EMULATOR_FIRST_ORDERID") or 1001),
)
