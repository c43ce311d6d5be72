/**
 * Advisory locks and cross-process single flight. On PostgreSQL, separate
 * lock and bus instances on one database stand for separate processes; the
 * poll interval is made very long where only a notification may wake a
 * waiter, so a missing NOTIFY shows as a hung (timed-out) test, not a slow one.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import type { DatabaseConfig } from "../src/config/config-schema.js";
import { type AdvisoryLocks, createAdvisoryLocks } from "../src/db/advisory-locks.js";
import { createNotificationBus, type NotificationBus } from "../src/db/notification-bus.js";
import { createLogger } from "../src/logging/logger.js";
import { CrossProcessFlight } from "../src/util/cross-process-flight.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { until } from "./support/mxcd-processes.js";

const logger = createLogger("silent");
const FOREVER = 3_600_000;

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

interface Proc {
  locks: AdvisoryLocks;
  bus: NotificationBus;
  flight(pollMs: number): CrossProcessFlight;
}

forEachEngine("cross-process single flight", (engine) => {
  let config: DatabaseConfig;
  const procs: Proc[] = [];
  /** A "process": its own locks and bus (on SQLite they can only be one process). */
  const proc = async (): Promise<Proc> => {
    if (engine === "sqlite" && procs[0]) return procs[0];
    const locks = createAdvisoryLocks(config, logger);
    const bus = createNotificationBus(config, logger);
    await Promise.all([locks.start(), bus.start()]);
    const p = {
      locks,
      bus,
      flight: (pollMs: number) => new CrossProcessFlight(locks, bus, "mxcd_thumbnail", pollMs),
    };
    procs.push(p);
    return p;
  };
  before(async () => {
    config = await freshDatabaseConfig(engine);
  });
  after(async () => {
    await Promise.all(procs.flatMap((p) => [p.locks.stop(), p.bus.stop()]));
  });

  it("a lock is held once, across processes, until released", async () => {
    const [a, b] = [await proc(), await proc()];
    const lease = await a.locks.tryAcquire("item");
    assert.ok(lease);
    assert.equal(await a.locks.tryAcquire("item"), undefined);
    assert.equal(await b.locks.tryAcquire("item"), undefined);
    assert.ok(await b.locks.tryAcquire("other"));
    await lease.release();
    const again = await b.locks.tryAcquire("item");
    assert.ok(again);
    await again.release();
  });

  it("does the work once for concurrent callers in every process; waiters are woken", async () => {
    const flights = [await proc(), await proc(), await proc()].map((p) => p.flight(FOREVER));
    const results = new Map<string, string>();
    const gate = deferred();
    let made = 0;
    const work = {
      find: async () => results.get("thumb"),
      make: async () => {
        made += 1;
        await gate.promise;
        results.set("thumb", "bytes");
        return "bytes";
      },
    };
    const runs = flights.flatMap((f) => [f.run("thumb", work), f.run("thumb", work)]);
    // Open the gate once the five others are waiting for the holder.
    await until(() => flights.reduce((n, f) => n + f.waiting, 0) === 5);
    gate.resolve();
    assert.deepEqual(await Promise.all(runs), Array(6).fill("bytes"));
    assert.equal(made, 1);
  });

  it("a waiter takes over when the holder fails", async () => {
    const [a, b] = [await proc(), await proc()];
    const [fa, fb] = [a.flight(FOREVER), b.flight(FOREVER)];
    const [holding, gate] = [deferred(), deferred()];
    let made = 0;
    const failing = fa.run("flaky", {
      find: async () => undefined,
      make: async () => {
        made += 1;
        holding.resolve();
        await gate.promise;
        throw new Error("remote said no");
      },
    });
    await holding.promise;
    const waiter = fb.run("flaky", {
      find: async () => undefined,
      make: async () => {
        made += 1;
        return "second try";
      },
    });
    await until(() => fb.waiting === 1);
    gate.resolve();
    await assert.rejects(failing, /remote said no/);
    assert.equal(await waiter, "second try");
    assert.equal(made, 2);
  });

  if (engine !== "postgres") return;

  it("a holder that dies releases its lock: a waiter takes over at its next poll", async () => {
    const [a, b] = [await proc(), await proc()];
    const holding = deferred();
    const stuck = a.flight(FOREVER).run("orphan", {
      find: async () => undefined,
      make: () => {
        holding.resolve();
        return new Promise<string>(() => {}); // never finishes: its process "dies"
      },
    });
    void stuck;
    await holding.promise;
    const fb = b.flight(20);
    const waiter = fb.run("orphan", { find: async () => undefined, make: async () => "mine" });
    await until(() => fb.waiting === 1);
    await a.locks.stop(); // the session ends, as when the process is killed
    assert.equal(await waiter, "mine");
  });
});
