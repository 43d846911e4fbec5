"""gunicorn config for the crash test: the first worker to reach the store notification stops dead.

Test instrumentation loaded into the real server; it pauses just after the charge is committed
and before the store is notified, so the test can kill -9 the worker at exactly that point.
"""
import os
import time


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    import gateway.payments.charging as charging  # where the pay path delivers its notification

    deliver = charging.deliver_if_claimed

    def pause_once_then_deliver(services, notification):  # type: ignore[no-untyped-def]
        try:
            os.remove(os.environ["CRASH_PAUSE_FLAG"])
        except FileNotFoundError:
            return deliver(services, notification)
        with open(os.environ["CRASH_MARKER"], "w") as marker:
            marker.write(str(os.getpid()))
        time.sleep(3600)

    charging.deliver_if_claimed = pause_once_then_deliver
