import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Semaphore } from "../../src/util/semaphore.js";

/** A promise with its resolve function, so a test decides when work ends. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Lets every queued promise callback run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe("Semaphore", () => {
  it("refuses a permit count that is not an integer >= 1", () => {
    assert.throws(() => new Semaphore(0), RangeError);
    assert.throws(() => new Semaphore(1.5), RangeError);
    assert.throws(() => new Semaphore(Number.NaN), RangeError);
  });

  it("never lets more than `permits` holders run at once", async () => {
    const semaphore = new Semaphore(3);
    const gates = Array.from({ length: 10 }, deferred);
    let inFlight = 0;
    let maxInFlight = 0;
    const runs = gates.map((gate) =>
      semaphore.run(async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await gate.promise;
        inFlight--;
      }),
    );
    await settle();
    assert.equal(semaphore.active, 3);
    assert.equal(semaphore.waiting, 7);
    for (const gate of gates) {
      gate.resolve();
      await settle();
      assert.ok(inFlight <= 3);
    }
    await Promise.all(runs);
    assert.equal(maxInFlight, 3);
    assert.equal(semaphore.active, 0);
    assert.equal(semaphore.waiting, 0);
  });

  it("serves waiters in arrival order", async () => {
    const semaphore = new Semaphore(1);
    const first = await semaphore.acquire();
    const order: number[] = [];
    const waits = [1, 2, 3].map((n) =>
      semaphore.acquire().then((release) => {
        order.push(n);
        release();
      }),
    );
    first();
    await Promise.all(waits);
    assert.deepEqual(order, [1, 2, 3]);
  });

  it("does not let a newcomer overtake a queued waiter", async () => {
    const semaphore = new Semaphore(1);
    const release = await semaphore.acquire();
    const order: string[] = [];
    const queued = semaphore.acquire().then((r) => {
      order.push("queued");
      r();
    });
    release();
    const newcomer = semaphore.acquire().then((r) => {
      order.push("newcomer");
      r();
    });
    await Promise.all([queued, newcomer]);
    assert.deepEqual(order, ["queued", "newcomer"]);
  });

  it("ignores a second release of the same permit", async () => {
    const semaphore = new Semaphore(2);
    const a = await semaphore.acquire();
    await semaphore.acquire();
    a();
    a();
    assert.equal(semaphore.active, 1);
  });

  it("releases the permit when the work throws", async () => {
    const semaphore = new Semaphore(1);
    await assert.rejects(
      semaphore.run(() => {
        throw new Error("boom");
      }),
      /boom/,
    );
    assert.equal(semaphore.active, 0);
    assert.equal(await semaphore.run(() => 42), 42);
  });

  it("drops an aborted waiter from the queue without taking a permit", async () => {
    const semaphore = new Semaphore(1);
    const release = await semaphore.acquire();
    const controller = new AbortController();
    const aborted = semaphore.acquire(controller.signal);
    const next = semaphore.acquire();
    assert.equal(semaphore.waiting, 2);
    const reason = new Error("gave up");
    controller.abort(reason);
    await assert.rejects(aborted, (error) => error === reason);
    assert.equal(semaphore.waiting, 1);
    release();
    const nextRelease = await next;
    assert.equal(semaphore.active, 1);
    nextRelease();
    assert.equal(semaphore.active, 0);
  });

  it("rejects at once for an already aborted signal", async () => {
    const semaphore = new Semaphore(1);
    const controller = new AbortController();
    controller.abort(new Error("already"));
    await assert.rejects(semaphore.acquire(controller.signal), /already/);
    assert.equal(semaphore.active, 0);
  });
});
