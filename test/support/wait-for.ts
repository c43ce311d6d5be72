/**
 * Polls `condition` every 20 ms until it holds (an observable condition, not
 * a sleep); fails naming `what` after `timeoutMs`, a bound generous for a
 * loaded machine (not a timing).
 */
export async function waitFor(
  condition: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
