"""Traffic jobs of the webhook fakes (Viber, WhatsApp): the shared control routes and the CLI
drive the same generator, and everything generated reaches the receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import pytest

from switchboard.sandbox.cli import main
from switchboard.sandbox.testing import serve, wait_until

from .messaging_support import PHONE_ID, HookReceiver, ViberEnv, WaEnv, viber_env, whatsapp_env


@dataclass(frozen=True)
class TrafficCase:
    """One fake, how its account is named, and the mixes its job and the CLI ask for."""

    env: Callable[[], AbstractAsyncContextManager[ViberEnv | WaEnv]]
    provider: str
    param: str  # the account's name in control bodies and queries
    account: str
    job: tuple[int, dict[str, float]]  # count and mix of the job started over the control API
    cli: tuple[int, str]  # count and --mix of the CLI run
    checks: int  # webhook POSTs before the traffic (Viber checks the URL with one)


CASES = [
    TrafficCase(
        viber_env,
        "viber",
        "bot",
        "testshop",
        (10, {"text": 1}),
        (12, "subscribed=1,conversation_started=1"),
        1,
    ),
    TrafficCase(
        whatsapp_env,
        "whatsapp",
        "number",
        PHONE_ID,
        (20, {"text": 1, "image": 1}),
        (15, "text=1,location=1"),
        0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.provider for case in CASES])
async def test_traffic_jobs_over_the_control_api_and_the_cli(case: TrafficCase) -> None:
    receiver = HookReceiver()
    async with case.env() as env, serve(receiver.app) as hook:
        fake = getattr(env.sandbox, case.provider)
        await fake.set_webhook(case.account, f"{hook}/hook")
        job_count, job_mix = case.job
        started = await env.http.post(
            f"/_sandbox/{case.provider}/traffic",
            json={case.param: case.account, "count": job_count, "rate": 1000, "mix": job_mix},
        )
        assert started.status_code == 202
        job = started.json()["id"]

        async def done() -> bool:
            state = (await env.http.get(f"/_sandbox/{case.provider}/traffic/{job}")).json()
            return bool(state["status"] == "done")

        await wait_until(done, message="traffic job finished")
        cli_count, cli_mix = case.cli
        code = await asyncio.to_thread(
            main,
            [
                *("traffic", "--url", env.url, "--provider", case.provider, "--bot", case.account),
                *("--rate", "2000", "--count", str(cli_count), "--mix", cli_mix),
            ],
        )
        assert code == 0
        generated = (
            await env.http.get(
                f"/_sandbox/{case.provider}/generated", params={case.param: case.account}
            )
        ).json()
        assert generated["count"] == job_count + cli_count
        kinds = {*job_mix, *(part.split("=")[0] for part in cli_mix.split(","))}
        assert set(generated["by_kind"]) <= kinds
        await fake.wait_delivered(case.account)
        assert len(receiver.hits) == case.checks + job_count + cli_count
