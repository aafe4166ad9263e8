// The OTLP audit exporter's answers to what a collector can say, against a plain local HTTP server
// playing the collector (the real Collector is in audit-otlp.test.ts): 503 with Retry-After is retried
// and nothing is lost, a 400 drops that batch (it cannot succeed) and counts it, a partialSuccess counts
// the records the collector refused, and close() counts what it could not deliver in time.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { backoffMs, OtlpAuditExporter } from "../../gateway/src/auditotlp.ts";
import { waitUntil } from "../support/index.ts";

/** What the fake collector answers next (then 200), and the bodies of the records it accepted. */
let answers: { status: number; headers?: Record<string, string>; body?: string }[] = [];
const accepted: string[] = [];
let requests = 0;
let server: http.Server;
let url: string;

before(async () => {
  server = http.createServer((req, res) => {
    let b = "";
    req.on("data", (d) => {
      b += d;
    });
    req.on("end", () => {
      requests++;
      assert.equal(req.url, "/v1/logs");
      assert.equal(req.headers["content-type"], "application/json");
      const a = answers.shift() ?? { status: 200, body: "{}" };
      if (a.status === 200) {
        const body = JSON.parse(b) as { resourceLogs: { scopeLogs: { logRecords: { body: { stringValue: string } }[] }[] }[] };
        for (const r of body.resourceLogs[0]!.scopeLogs[0]!.logRecords) accepted.push(r.body.stringValue);
      }
      res.writeHead(a.status, { "content-type": "application/json", ...a.headers }).end(a.body ?? "");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise((r) => server.close(r)));

const exporter = (bufferLines = 100) =>
  new OtlpAuditExporter({ endpoint: url, bufferLines, resource: { "service.name": "t" }, minBackoffMs: 20, maxBackoffMs: 200 });

test("503 with Retry-After and 429 are retried until accepted: nothing lost, in order", async () => {
  accepted.length = 0;
  requests = 0;
  answers = [{ status: 503, headers: { "retry-after": "1" } }, { status: 429 }];
  const e = exporter();
  const t0 = Date.now();
  e.write('{"seq":0}\n{"seq":1}\n');
  // The exporter's count moves when it has read the answer (after the server took the lines).
  await waitUntil(
    "the lines to be accepted after two refusals",
    () => e.stats.exported,
    (n) => n === 2,
  );
  assert.ok(Date.now() - t0 >= 1000, "the collector's Retry-After (1 s) was waited out, not only our 200 ms backoff cap");
  assert.deepEqual(accepted, ['{"seq":0}', '{"seq":1}']);
  assert.deepEqual([e.stats.exported, e.stats.retries, e.stats.dropped], [2, 2, { "buffer-full": 0, rejected: 0, shutdown: 0 }]);
  assert.equal(requests, 3, "the same batch sent three times, one request each (two lines in one batch)");
  await e.close();
});

test("a 400 drops that batch and counts it; a partialSuccess counts the refused records", async () => {
  accepted.length = 0;
  answers = [{ status: 400, body: '{"message":"bad"}' }];
  const e = exporter();
  e.write('{"seq":0}\n');
  await waitUntil(
    "the refused batch to be counted",
    () => e.stats.dropped.rejected,
    (n) => n === 1,
  );
  answers = [{ status: 200, body: '{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"one too big"}}' }];
  e.write('{"seq":1}\n{"seq":2}\n');
  await waitUntil(
    "the partial success to be counted",
    () => e.stats.dropped.rejected,
    (n) => n === 2,
  );
  assert.equal(e.stats.exported, 1);
  await e.close();
});

test("close() delivers what it can within its deadline and counts the rest as dropped at shutdown", async () => {
  answers = Array.from({ length: 1000 }, () => ({ status: 503 }));
  const e = exporter();
  e.write('{"seq":0}\n{"seq":1}\n{"seq":2}\n');
  await e.close(300);
  assert.deepEqual([e.stats.dropped.shutdown, e.stats.buffered], [3, 0]);
  e.write('{"seq":3}\n');
  assert.equal(e.stats.dropped["buffer-full"], 0, "writes after close are ignored");
  answers = [];
});

test("backoff doubles from the minimum up to the cap, with jitter below it", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 10].map((a) => backoffMs(a, 100, 5000, () => 1)),
    [100, 200, 400, 800, 5000],
  );
  assert.equal(
    backoffMs(2, 100, 5000, () => 0),
    320,
  );
});
