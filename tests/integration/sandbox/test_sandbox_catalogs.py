"""Reference-data routes of the simulator (FACTUS_API.md §8)."""

from __future__ import annotations

import httpx


def test_numbering_ranges_are_paginated_with_the_sandbox_setp_range_as_id_8(api: httpx.Client):
    listing = api.get("/v1/numbering-ranges").json()["data"]

    by_id = {row["id"]: row for row in listing["data"]}
    setp = by_id[8]
    assert listing["pagination"]["per_page"] == 10
    assert (setp["document"], setp["prefix"], setp["from"], setp["to"]) == (
        "Factura de Venta",
        "SETP",
        990000000,
        995000000,
    )
    assert (
        setp["resolution_number"],
        setp["start_date"],
        setp["is_expired"],
        setp["is_active"],
    ) == ("18760000001", "2019-01-19", False, 1)
    assert setp["technical_key"] == "fc8eac422eba16e22ffd8c6f94b3f40a6e38162c"
    assert by_id[9]["prefix"] == "NC"
    assert by_id[9]["resolution_number"] is None
    assert by_id[12]["is_expired"] is True
    assert by_id[14]["is_active"] == 0


def test_numbering_ranges_can_be_filtered_and_shown_one_by_one(api: httpx.Client):
    credit = api.get("/v1/numbering-ranges", params={"filter[document]": "22"}).json()["data"][
        "data"
    ]
    inactive = api.get("/v1/numbering-ranges", params={"filter[is_active]": "0"}).json()["data"][
        "data"
    ]
    one = api.get("/v1/numbering-ranges/8").json()["data"]

    assert [r["prefix"] for r in credit] == ["NC"]
    assert [r["id"] for r in inactive] == [14]
    assert (one["document"], one["document_name"], one["start_date"]) == (
        "21",
        "Factura de Venta",
        "19-01-2019",
    )
    assert api.get("/v1/numbering-ranges/77").status_code == 404


def test_municipalities_are_searched_by_name_ignoring_case_and_accents(api: httpx.Client):
    bogota = api.get("/v1/municipalities", params={"name": "bogota"}).json()["data"]
    san_gil = api.get("/v1/municipalities", params={"name": "San Gil"}).json()["data"]
    everything = api.get("/v1/municipalities").json()["data"]

    assert [m["id"] for m in bogota] == [169]
    assert san_gil == [{"id": 980, "code": "68679", "name": "San Gil", "department": "Santander"}]
    assert len(everything) == 1122


def test_units_and_product_tributes_are_the_documented_ones(api: httpx.Client):
    units = api.get("/v1/measurement-units").json()["data"]
    kilo = api.get("/v1/measurement-units", params={"name": "kilo"}).json()["data"]
    tributes = api.get("/v1/tributes/products").json()["data"]
    iva = api.get("/v1/tributes/products", params={"name": "IVA"}).json()["data"]

    assert [u["id"] for u in units] == [70, 414, 449, 512, 874]
    assert kilo == [{"id": 414, "code": "KGM", "name": "kilogramo"}]
    assert [t["id"] for t in tributes] == list(range(1, 18))
    assert [t["name"] for t in iva] == ["IVA", "ReteIVA"]


def test_the_company_is_factus_sas_for_the_default_account(api: httpx.Client):
    company = api.get("/v1/company").json()

    assert company["status"] == "OK"
    assert (company["data"]["nit"], company["data"]["dv"], company["data"]["company"]) == (
        "901724254",
        "1",
        "FACTUS S.A.S.",
    )
    assert company["data"]["municipality"]["department"]["name"] == "Santander"


def test_unknown_routes_answer_json_404(api: httpx.Client):
    response = api.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"message": "The route v1/nothing-here could not be found."}
