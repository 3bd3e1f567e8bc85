// Connections per second, as the load generators measure it: `concurrency` loops that each run one
// connection after another (`once()`, resolving when it is done) until `count` are started or `ms` is up.

/** Runs the loops; resolves with connections done, errors, seconds, connections per second, first error. */
export async function measureCps({ concurrency, ms, count }, once) {
  let started = 0;
  let done = 0;
  let errors = 0;
  let firstError;
  const t0 = performance.now();
  const end = t0 + ms;
  const loop = async () => {
    while (started < count && performance.now() < end) {
      started++;
      try {
        await once();
        done++;
      } catch (e) {
        errors++;
        firstError ??= String(e?.message ?? e);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const secs = (performance.now() - t0) / 1000;
  return { connections: done, errors, secs, cps: done / secs, firstError };
}
