"""Each user's private address book and its CSV download."""

from __future__ import annotations

import re

import pytest
from helpers import Auth


def add(client, name="Bob", email="bob@example.com", notes=""):
    return client.post_form("/people/new", {"name": name, "email": email, "notes": notes})


def person_ids(client) -> list[str]:
    return re.findall(r'href="/people/(\d+)/edit"', client.get("/people").get_data(as_text=True))


def test_people_pages_need_login(client):
    for path in ("/people", "/people/new", "/download"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_create_list_edit_delete(client, auth):
    auth.signed_in("alice")
    assert add(client).status_code == 302
    page = client.get("/people").get_data(as_text=True)
    assert "Bob" in page and "bob@example.com" in page
    [pid] = person_ids(client)
    edited = client.post_form(
        f"/people/{pid}/edit", {"name": "Robert", "email": "", "notes": "met at PyCon"}
    )
    assert edited.status_code == 302
    page = client.get("/people").get_data(as_text=True)
    assert "Robert" in page and "met at PyCon" in page and "bob@example.com" not in page
    deleted = client.post_form(f"/people/{pid}/delete", {}, form_page="/people")
    assert deleted.status_code == 302
    assert "Your address book is empty" in client.get("/people").get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "email": "", "notes": ""}, "This field is required."),
        ({"name": "x" * 101, "email": "", "notes": ""}, "Field cannot be longer than 100"),
        ({"name": "Bob", "email": "not-an-email", "notes": ""}, "Invalid email address."),
        ({"name": "Bob", "email": "", "notes": "n" * 2001}, "Field cannot be longer than 2000"),
    ],
)
def test_invalid_person_is_an_inline_error(client, auth, data, message):
    auth.signed_in("alice")
    response = client.post_form("/people/new", data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_non_ascii_person_round_trips(client, auth):
    auth.signed_in("alice")
    add(client, name="Zoë Ångström 李", email="zoe@exämple.org", notes="emoji ✓ 🎉")
    page = client.get("/people").get_data(as_text=True)
    assert "Zoë Ångström 李" in page and "emoji ✓ 🎉" in page


def test_html_in_a_name_is_escaped(client, auth):
    auth.signed_in("alice")
    add(client, name="<script>alert(1)</script>", email="")
    page = client.get("/people").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_another_users_person_is_a_404(client, auth, make_client):
    auth.signed_in("alice")
    add(client)
    [pid] = person_ids(client)
    mallory = make_client()
    Auth(mallory).signed_in("mallory")
    assert mallory.get(f"/people/{pid}/edit").status_code == 404
    token = mallory.csrf_token("/people/new")
    response = mallory.post(f"/people/{pid}/delete", data={"csrf_token": token})
    assert response.status_code == 404
    assert "Bob" not in mallory.get("/people").get_data(as_text=True)
    assert "Bob" not in mallory.get("/download").get_data(as_text=True)
    assert "Bob" in client.get("/people").get_data(as_text=True)


def test_download_is_a_csv_attachment_of_my_people(client, auth):
    auth.signed_in("alice")
    add(client, name="Bob", email="bob@example.com", notes='=HYPERLINK("x")')
    response = client.get("/download")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == "attachment; filename=people.csv"
    assert response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0] == "name,email,notes"
    assert lines[1].startswith("Bob,bob@example.com,")
    assert "'=HYPERLINK" in lines[1]  # formulas are neutralised for spreadsheets


def test_dashboard_summarises_people(client, auth):
    auth.signed_in("alice")
    add(client, name="Bob")
    add(client, name="Carol", email="")
    page = client.get("/dashboard").get_data(as_text=True)
    assert "You have 2 people" in page and "Bob" in page and "Carol" in page
