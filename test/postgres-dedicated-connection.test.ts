/**
 * The dedicated PostgreSQL connection shared by a process's notification bus
 * and by its advisory locks (src/db/postgres/dedicated-connection.ts) sends
 * one statement at a time: a burst of publishes, or of lock requests, never
 * hands pg a statement while another runs (pg 8 queues it with a deprecation
 * warning, pg 9 will refuse it), and every statement still runs, in order.
 * Two buses (or two lock sets) on one database stand for two processes.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import type { DatabaseConfig } from "../src/config/config-schema.js";
import { type AdvisoryLocks, createAdvisoryLocks } from "../src/db/advisory-locks.js";
import { createNotificationBus, type NotificationBus } from "../src/db/notification-bus.js";
import { createLogger } from "../src/logging/logger.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";

const logger = createLogger("silent");

/** The deprecation warnings this process emitted (pg's "already executing a query" is one). */
const warnings: Error[] = [];
process.on("warning", (warning) => warnings.push(warning));
const deprecations = () =>
  warnings.filter((w) => w.name === "DeprecationWarning").map((w) => w.message);

forEachEngine("the dedicated connection's statements", (engine) => {
  let config: DatabaseConfig;
  const stops: (() => Promise<void>)[] = [];
  const bus = async (): Promise<NotificationBus> => {
    const opened = createNotificationBus(config, logger);
    await opened.start();
    stops.push(() => opened.stop());
    return opened;
  };
  const locks = async (): Promise<AdvisoryLocks> => {
    const opened = createAdvisoryLocks(config, logger);
    await opened.start();
    stops.push(() => opened.stop());
    return opened;
  };
  before(async () => {
    config = await freshDatabaseConfig(engine);
  });
  after(async () => {
    await Promise.all(stops.map((stop) => stop()));
  });

  it("a burst of publishes reaches this process and the other one whole and in order", async () => {
    const [a, b] = [await bus(), await bus()];
    const here: string[] = [];
    const there: string[] = [];
    let allThere: () => void = () => {};
    const arrived = new Promise<void>((resolve) => {
      allThere = resolve;
    });
    a.subscribe("mxcd_feed", (payload) => here.push(payload));
    b.subscribe("mxcd_feed", (payload) => {
      there.push(payload);
      if (payload === "49") allThere();
    });
    const sent = Array.from({ length: 50 }, (_, i) => String(i));
    for (const payload of sent) a.publish("mxcd_feed", payload);
    assert.deepEqual(here, sent);
    if (engine === "postgres") {
      await arrived;
      assert.deepEqual(there, sent);
    }
    assert.deepEqual(deprecations(), []);
  });

  it("a burst of lock requests and releases: each lock held once, then free again", async () => {
    const [mine, theirs] = [await locks(), await locks()];
    const names = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
    const leases = await Promise.all(names.map((name) => mine.tryAcquire(name)));
    assert.ok(
      leases.every((lease) => lease !== undefined),
      "every lock granted",
    );
    if (engine === "postgres") {
      // Held on PostgreSQL, so the other process is refused every one.
      const refused = await Promise.all(names.map((name) => theirs.tryAcquire(name)));
      assert.ok(
        refused.every((lease) => lease === undefined),
        "no lock granted twice",
      );
    }
    await Promise.all(leases.map((lease) => lease!.release()));
    const again = await Promise.all(names.map((name) => theirs.tryAcquire(name)));
    assert.ok(
      again.every((lease) => lease !== undefined),
      "every released lock is free",
    );
    await Promise.all(again.map((lease) => lease!.release()));
    assert.deepEqual(deprecations(), []);
  });
});
