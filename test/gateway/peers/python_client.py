"""A real MCP client for the protocol-era tests: the official Python SDK (`mcp` 2.x), unchanged.

Usage: python python_client.py URL API_KEY MODE STEP...
  MODE   auto (probe with server/discover, fall back to initialize) or legacy (initialize only)
  STEP   list                 list the tools
         call:TOOL:JSON       call TOOL with the JSON arguments
         elicit:TOOL:JSON     call TOOL, answering any elicitation with accept + {"confirm": true}
Prints one JSON object: the negotiated protocol version, and per step its outcome (tools, content text,
or the error the client raised with its code when it carries one). Never raises: the test reads the JSON.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    url, key, mode, *steps = sys.argv[1:]
    elicitations: list[str] = []

    async def on_elicit(_context, params):
        elicitations.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    out: dict = {"mode": mode, "steps": [], "elicitations": elicitations}
    async with httpx2.AsyncClient(headers={"x-api-key": key}, timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        try:
            async with Client(transport, mode=mode, elicitation_callback=on_elicit, raise_exceptions=True) as client:
                out["protocolVersion"] = client.protocol_version
                for step in steps:
                    kind, _, rest = step.partition(":")
                    try:
                        if kind == "list":
                            tools = await client.list_tools()
                            out["steps"].append({"step": step, "tools": sorted(t.name for t in tools.tools)})
                        else:
                            tool, _, args = rest.partition(":")
                            result = await client.call_tool(tool, json.loads(args or "{}"))
                            texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
                            out["steps"].append({"step": step, "isError": bool(result.is_error), "text": texts})
                    except Exception as e:  # the test asserts on what the client saw
                        out["steps"].append({"step": step, "error": describe(e)})
        except Exception as e:
            out["connectError"] = describe(e)
    print(json.dumps(out))


def describe(e: BaseException) -> dict:
    if isinstance(e, BaseExceptionGroup) and e.exceptions:
        return describe(e.exceptions[0])
    err = getattr(e, "error", None)
    code = getattr(err, "code", None) if err is not None else getattr(e, "code", None)
    return {"type": type(e).__name__, "code": code, "message": str(e)[:500]}


asyncio.run(main())
