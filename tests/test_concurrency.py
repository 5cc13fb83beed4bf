"""Concurrent changes never lose an update, on a SQLite file and on PostgreSQL.

Two processes that both read an item and both decide the same move race to write it:
exactly one wins, the other gets ConflictError, and the record has one new event. Many
threads hammering ``Office.act`` on one item end with as many events as versions.
"""

from __future__ import annotations

import multiprocessing
import textwrap
import threading

import pytest

from humasflow import ConflictError, NotAllowedNow

# The racing process. It lives in a module of its own so that a spawned interpreter can
# import it; it does what Office.act does, with a barrier between deciding and writing.
WORKER = textwrap.dedent('''
    import datetime as dt

    from humasflow import ConflictError, Event, Office
    from humasflow.storage.store import Store

    AT = dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.timezone.utc)


    def race(url, org, item_id, actor_id, rounds, barrier, results):
        store = Store(url, migrate=False)
        try:
            office = Office(store, org, clock=lambda: AT, environ={})
            actor = office.actor(actor_id)
            for action, payload in rounds:
                item, head = store.item_with_head(org, item_id)
                move = office.engine(item.sop_revision).run(item, action, actor,
                                                            payload=payload)
                barrier.wait(timeout=60)  # both have read the item and decided the move
                event = Event(org=org, stream="", seq=0, at=AT, actor=actor.id,
                              action=move.action, from_state=move.from_state,
                              to_state=move.to_state, note=move.note, data=dict(move.data))
                try:
                    with store.writing() as conn:
                        store.apply(conn, move.item, item.version, head, event,
                                    new_step=move.to_state != move.from_state)
                except ConflictError as exc:
                    results.put(("conflict", exc.expected_version))
                else:
                    results.put(("won", item.version))
                barrier.wait(timeout=60)  # both have written (or failed) this round
        except BaseException as exc:
            results.put(("error", repr(exc)))
            barrier.abort()
        finally:
            store.close()
''')


@pytest.fixture
def worker_module(tmp_path, monkeypatch):
    folder = tmp_path / "worker"
    folder.mkdir()
    (folder / "humasflow_race_worker.py").write_text(WORKER, "utf-8")
    monkeypatch.syspath_prepend(str(folder))  # spawned children inherit sys.path
    import humasflow_race_worker

    yield humasflow_race_worker
    monkeypatch.delitem(__import__("sys").modules, "humasflow_race_worker")


@pytest.mark.slow
def test_two_processes_racing_the_same_move_one_wins_one_conflicts(
        office, store_url, worker_module, image):
    item = office.new_item("Rebutan", by="rina")
    rounds = [("complete", {"text": "Konsep A"}), ("complete", {"notes": "Template"}),
              ("complete", {"media": [image]})]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=worker_module.race,
                         args=(store_url, office.org, item.id, who, rounds, barrier, results))
             for who in ("rina", "sari")]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * len(rounds))]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert not [o for o in outcomes if o[0] == "error"], outcomes
    for n in range(len(rounds)):
        version = item.version + n
        assert sorted(o[0] for o in outcomes if o[1] == version) == ["conflict", "won"]
    after = office.item(item.id)
    assert after.version == item.version + len(rounds)  # one per round, none lost
    assert after.state == "approve"
    history = office.history(item.id)
    assert len(history) == after.version
    assert [e.action for e in history] == ["create", "complete", "complete", "complete"]
    assert office.verify().ok


def _hammer(n_threads, work):
    barrier = threading.Barrier(n_threads)
    outcomes: list[object] = []
    lock = threading.Lock()

    def run(i):
        barrier.wait(timeout=60)
        for result in work(i):
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    return outcomes


def test_threads_revising_one_item_never_lose_an_update(office):
    item = office.new_item("Ramai", by="rina")

    def work(i):
        for j in range(5):
            try:
                office.revise(item.id, by="rina" if i % 2 else "sari", text=f"Versi {i}.{j}")
            except ConflictError as exc:
                yield exc
            else:
                yield "ok"

    outcomes = _hammer(8, work)
    assert len(outcomes) == 40
    assert all(o == "ok" or isinstance(o, ConflictError) for o in outcomes)
    wins = outcomes.count("ok")
    assert wins >= 1
    after = office.item(item.id)
    history = office.history(item.id)
    assert after.version == 1 + wins
    assert len(history) == after.version
    assert after.post.text == history[-1].data["text"]  # the stored text is the last write
    assert office.verify().ok


def test_threads_approving_one_item_move_it_once(office, image):
    item = office.new_item("Sekali saja", by="rina")
    item = office.complete(item.id, by="rina", text="Konsep")
    item = office.complete(item.id, by="rina", notes="Template")
    item = office.complete(item.id, by="rina", media=[image])
    assert item.state == "approve"

    def work(i):
        try:
            office.approve(item.id, by="budi", answer=f"OK {i}")
        except (ConflictError, NotAllowedNow) as exc:
            yield exc  # lost the race, or read the item after it moved on
        else:
            yield "ok"

    outcomes = _hammer(8, work)
    assert outcomes.count("ok") == 1
    assert all(o == "ok" or isinstance(o, (ConflictError, NotAllowedNow)) for o in outcomes)
    after = office.item(item.id)
    assert (after.state, after.version) == ("produce", item.version + 1)
    history = office.history(item.id)
    assert len(history) == after.version
    assert [e.action for e in history].count("approve") == 1
    assert office.verify().ok


def test_a_stale_expected_version_is_a_conflict_and_writes_nothing(office):
    item = office.new_item("Formulir", by="rina")
    office.revise(item.id, by="rina", text="Versi baru")
    with pytest.raises(ConflictError) as caught:
        office.complete(item.id, by="rina", text="Dari formulir lama",
                        expected_version=item.version)
    assert caught.value.expected_version == item.version
    assert office.item(item.id).version == item.version + 1
    assert len(office.history(item.id)) == item.version + 1
