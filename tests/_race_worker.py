"""One process of the posting race test (tests/test_posting_races.py).

Usage: python _race_worker.py STORE_URL MEDIA_FOLDER SEED ROUNDS ITEM_ID...

Does random actions on the given items as the office's staff and coordinator: post,
revise, approve, produce, recheck, rework, cancel, schedule and run the due posts. A
short random pause is injected between the posting checks and the claims (and before a
schedule is written), so revise and cancel commit in exactly the window that matters.
Every refusal is expected; anything that is not a humasflow error, and a deadlock,
ends the process with a non-zero status.
"""

from __future__ import annotations

import random
import sys
import time

from humasflow import HumasflowError, Office, StorageError
from humasflow.storage.store import Store


def main() -> None:
    url, media, seed, rounds, *ids = sys.argv[1:]
    rng = random.Random(int(seed))
    items = [int(i) for i in ids]
    store = Store(url)

    def paused(method):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            time.sleep(rng.random() * 0.02)
            return method(*args, **kwargs)
        return wrapper

    store.claim_channels = paused(store.claim_channels)  # type: ignore[method-assign]
    store.set_post_at = paused(store.set_post_at)  # type: ignore[method-assign]
    office = Office(store, media_store=media)
    for n in range(int(rounds)):
        item_id = rng.choice(items)
        action = rng.choice(["post", "post", "post", "revise", "approve", "produce",
                             "recheck", "rework", "cancel", "schedule"])
        try:
            if action == "post":
                office.post(item_id, by="rina")
            elif action == "revise":
                office.revise(item_id, by="rina", text=f"revised by {seed} in round {n}")
            elif action == "approve":
                office.approve(item_id, by="budi", answer="OK")
            elif action == "produce":
                item = office.item(item_id)
                office.complete(item_id, by="rina", media=list(item.post.media))
            elif action == "recheck":
                office.pass_recheck(item_id, by="sari")
            elif action == "rework":
                office.rework(item_id, by="sari", findings="logo too small")
            elif action == "cancel":
                if rng.random() < 0.3:
                    office.cancel(item_id, by="budi", reason="event cancelled")
            else:
                office.schedule(item_id, office.clock(), by="rina")
                office.run_due()
        except StorageError as exc:
            if "deadlock" in str(exc):
                raise  # two writers waiting for each other is never expected
        except HumasflowError:
            pass  # refused, changed meanwhile, or in conflict: all expected here
    store.close()


if __name__ == "__main__":
    main()
