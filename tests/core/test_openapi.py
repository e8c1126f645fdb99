"""The OpenAPI document says who may call each operation and which errors it answers, in our error shape."""

import re

import pytest

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
MEMBER, STAFF = [{"memberBearer": []}], [{"staffBearer": []}]


@pytest.fixture
async def document(documented_client) -> dict:
    response = await documented_client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield method.upper(), path, operation


async def test_the_bearer_schemes_are_declared_and_each_operation_names_its_own(document):
    schemes = document["components"]["securitySchemes"]
    assert {name: (s["type"], s["scheme"]) for name, s in schemes.items()} == {
        "memberBearer": ("http", "bearer"),
        "staffBearer": ("http", "bearer"),
    }
    security = {(method, path): operation.get("security") for method, path, operation in operations(document)}
    assert security[("GET", "/api/v1/me")] == MEMBER
    assert security[("POST", "/api/v1/cashier/orders")] == STAFF
    assert security[("POST", "/api/v1/admin/stores")] == STAFF
    assert security[("POST", "/api/v1/stores/{store_id}/payments")] == MEMBER
    for public in (("GET", "/api/v1/stores"), ("POST", "/api/v1/auth/staff/login"), ("GET", "/healthz")):
        assert security[public] is None, public
    assert sum(s == MEMBER for s in security.values()) >= 15 and sum(s == STAFF for s in security.values()) >= 15


async def test_every_operations_errors_are_documented_in_our_shape(document):
    assert set(document["components"]["schemas"]["ErrorOut"]["required"]) == {"code", "message", "details"}
    count = 0
    for method, path, operation in operations(document):
        count += 1
        responses = operation["responses"]
        errors = {status: r for status, r in responses.items() if status.startswith(("4", "5"))}
        assert "429" in errors, (method, path)
        for status, response in errors.items():
            assert response["content"]["application/json"]["schema"] == ERROR_REF, (method, path, status)
        if operation.get("security"):
            assert {"401", "403"} <= set(errors), (method, path)
        if "{" in path:
            assert {"404", "422"} <= set(errors), (method, path)
        if method in ("POST", "PUT", "PATCH") and operation.get("requestBody"):
            assert {"400", "409", "422"} <= set(errors), (method, path)
    assert count >= 48


async def test_schema_names_read_as_words(document):
    odd = [name for name in document["components"]["schemas"] if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name)]
    assert odd == []


async def test_bodies_and_answers_that_are_not_json_are_documented(document):
    paths = document["paths"]
    avatar = paths["/api/v1/me/avatar"]["post"]["requestBody"]["content"]
    assert set(avatar) == {"image/jpeg", "image/png", "image/webp", "multipart/form-data"}
    assert avatar["image/jpeg"]["schema"] == {"type": "string", "format": "binary"}
    assert set(paths["/api/v1/me/posters"]["get"]["responses"]["200"]["content"]) == {"image/png", "image/jpeg"}
    demand = paths["/api/v1/admin/groupbuy/campaigns/{campaign_id}/demand"]["get"]["responses"]["200"]["content"]
    assert demand["application/json"]["schema"] == {"$ref": "#/components/schemas/DemandOut"}
    assert "text/csv" in demand


async def test_every_operation_has_a_summary_and_a_description_from_its_docstring(document):
    # A handler's docstring is its summary line, a blank line, then its description.
    payment = document["paths"]["/api/v1/stores/{store_id}/payments"]["post"]
    assert payment["summary"] == "Pay at a store by its code"
    assert payment["description"].startswith("The shopper scanned")
    undescribed = [op["operationId"] for _, _, op in operations(document) if not op.get("description")]
    assert undescribed == []
    summaries = [op.get("summary", "") for _, _, op in operations(document)]
    # A summary is words for the docs' menu, not the handler's name, and no two operations share one.
    assert [
        summary for summary in summaries if not re.fullmatch(r"[A-Z][^\n]{2,60}", summary) or " " not in summary
    ] == []
    assert len(set(summaries)) == len(summaries)
