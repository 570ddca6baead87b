"""The baseline of the ack benchmark: a bare Bolt AsyncApp whose ``/stopcampaign`` only acks.

Default Bolt settings, served by Bolt's built-in aiohttp server (``app.start``) on
127.0.0.1:``PORT``. The only non-default is the Web API client's base URL
(``BENCH_SLACK_API_URL``, the benchmark's fake Slack), so that Bolt's default authorization
(``auth.test`` on the first request, then cached) stays on 127.0.0.1. Run as a script::

    PORT=3100 BENCH_SLACK_SIGNING_SECRET=… BENCH_SLACK_BOT_TOKEN=… BENCH_SLACK_API_URL=http://127.0.0.1:…/api/ \\
        python tests/benchmarks/bare_bolt.py
"""

from __future__ import annotations

import os

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def main() -> None:
    """Build the app and serve it until terminated."""
    client = AsyncWebClient(token=os.environ["BENCH_SLACK_BOT_TOKEN"], base_url=os.environ["BENCH_SLACK_API_URL"])
    app = AsyncApp(client=client, signing_secret=os.environ["BENCH_SLACK_SIGNING_SECRET"])

    @app.command("/stopcampaign")
    async def stopcampaign(ack: AsyncAck) -> None:
        await ack()

    app.start(port=int(os.environ["PORT"]), host="127.0.0.1")


if __name__ == "__main__":
    main()
