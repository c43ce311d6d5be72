/**
 * Teardown actions collected while the benchmark sets things up, run in
 * reverse order at the end, on failure and on Ctrl-C alike.
 */

type Action = { readonly label: string; readonly run: () => Promise<void> | void };

/** A last-in, first-out list of teardown actions; `run()` is idempotent. */
export class Cleanup {
  readonly #actions: Action[] = [];
  #running: Promise<void> | undefined;

  /** Registers `run` to be called by `run()` (after everything added later). */
  add(label: string, run: () => Promise<void> | void): void {
    this.#actions.push({ label, run });
  }

  /** Runs every action once, newest first; a failing action is reported, not fatal. */
  run(): Promise<void> {
    this.#running ??= this.#runAll();
    return this.#running;
  }

  async #runAll(): Promise<void> {
    for (let action = this.#actions.pop(); action; action = this.#actions.pop()) {
      try {
        await action.run();
      } catch (error) {
        console.error(`cleanup: ${action.label} failed: ${describeError(error)}`);
      }
    }
  }
}

/** An error's message, or the value as text. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
