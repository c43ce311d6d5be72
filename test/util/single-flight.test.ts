import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SingleFlight } from "../../src/util/single-flight.js";

/** A promise whose outcome the test decides. */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("SingleFlight", () => {
  it("runs the work once for concurrent callers of one key", async () => {
    const flight = new SingleFlight<string, number>();
    const gate = deferred<number>();
    let calls = 0;
    const work = () => {
      calls++;
      return gate.promise;
    };
    const a = flight.run("k", work);
    const b = flight.run("k", work);
    assert.equal(a, b);
    assert.ok(flight.has("k"));
    gate.resolve(7);
    assert.deepEqual(await Promise.all([a, b]), [7, 7]);
    assert.equal(calls, 1);
  });

  it("keeps different keys apart", async () => {
    const flight = new SingleFlight<string, string>();
    const results = await Promise.all([
      flight.run("a", async () => "A"),
      flight.run("b", async () => "B"),
    ]);
    assert.deepEqual(results, ["A", "B"]);
  });

  it("forgets a key once its work settles, so the next call runs again", async () => {
    const flight = new SingleFlight<string, number>();
    let calls = 0;
    await flight.run("k", async () => ++calls);
    assert.equal(flight.size, 0);
    assert.equal(flight.has("k"), false);
    assert.equal(await flight.run("k", async () => ++calls), 2);
  });

  it("shares a rejection with every waiter and then forgets the key", async () => {
    const flight = new SingleFlight<string, number>();
    const gate = deferred<number>();
    const error = new Error("generation failed");
    const a = flight.run("k", () => gate.promise);
    const b = flight.run("k", () => Promise.resolve(1));
    gate.reject(error);
    await assert.rejects(a, (e) => e === error);
    await assert.rejects(b, (e) => e === error);
    assert.equal(flight.size, 0);
    assert.equal(await flight.run("k", async () => 2), 2);
  });

  it("turns a synchronous throw into a shared rejection", async () => {
    const flight = new SingleFlight<number, number>();
    const p = flight.run(1, () => {
      throw new Error("sync");
    });
    await assert.rejects(p, /sync/);
    assert.equal(flight.size, 0);
  });

  it("has removed the entry by the time a waiter sees the outcome", async () => {
    const flight = new SingleFlight<string, number>();
    const seen = await flight.run("k", async () => 1).then(() => flight.has("k"));
    assert.equal(seen, false);
  });
});
