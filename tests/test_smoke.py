"""The whole lifecycle, on SQLite and PostgreSQL."""


def test_item_walks_the_sop_and_posts(office, image):
    item = office.new_item("Dies Natalis", by="rina")
    item = office.complete(item.id, by="rina", text="Selamat Dies Natalis FISIP UB")
    item = office.complete(item.id, by="rina", notes="Canva template 'dies'")
    item = office.complete(item.id, by="rina", media=[image])
    item = office.approve(item.id, by="budi", answer="OK by email")
    item = office.complete(item.id, by="rina", media=[image])
    item = office.pass_recheck(item.id, by="sari")
    report = office.post(item.id, by="rina")
    assert report.done
    assert report.publications["outbox"].state == "posted"
    assert office.verify().ok
