"""A property-based run of the whole API from its own OpenAPI document (schemathesis, in a process of its own)
against a served process, with a member's and an HQ admin's tokens: no 5xx, and no status code, content type,
header or body that the document does not declare; no body that breaks its schema accepted; no operation that
takes a request without its token.

Two of schemathesis's checks are left out, each for a reason:
- positive_data_acceptance: the API refuses more than JSON Schema can say (1.0 where an integer is due, rules
  across fields such as "exactly one of campaignId and groupId", a member code that must be real);
- allow_header_conformance: Litestar's automatic OPTIONS answer lists the methods of the first handler
  registered at a path (GET for /api/v1/me, not its PATCH).
"""

import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import member_login, served_process, staff_login

CHECKS = "all"
LEFT_OUT = "positive_data_acceptance,allow_header_conformance"
EXAMPLES = 30  # per operation and phase: about 3,000 requests in all, 15-30 s on either deployment


async def test_the_whole_api_keeps_to_its_document(demo, unused_tcp_port, tmp_path):
    with served_process(unused_tcp_port, VAR_DIR=str(tmp_path), RATE_LIMIT_PER_MINUTE="1000000") as served:
        async with httpx.AsyncClient(base_url=served.base) as client:
            staff = (await staff_login(client, "hq"))["Authorization"].removeprefix("Bearer ")
            member = (await member_login(client, openid="o-fuzzer"))["accessToken"]
        document = httpx.get(f"{served.base}/schema/openapi.json").json()
        operations = sum(len(item) for item in document["paths"].values())
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            f'[auth.openapi.memberBearer]\nbearer = "{member}"\n\n[auth.openapi.staffBearer]\nbearer = "{staff}"\n'
        )
        run = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(config),
                "run",
                f"{served.base}/schema/openapi.json",
                f"--checks={CHECKS}",
                f"--exclude-checks={LEFT_OUT}",
                f"--max-examples={EXAMPLES}",
                # One worker: Python 3.11's ast.parse is not safe across threads, and Hypothesis parses a lambda's
                # source to describe each filtered strategy ("AST constructor recursion depth mismatch")
                "--workers=1",
                "--request-timeout=10",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    report = run.stdout[-12_000:] + run.stderr[-2_000:]
    assert run.returncode == 0, report
    assert re.search(rf"Tested: {operations}\b", report)  # every operation of the document was run
    assert [line for line in served.lines if "unhandled error" in line or "Traceback" in line] == []  # no 500 logged
