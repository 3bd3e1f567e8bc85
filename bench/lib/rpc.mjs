// The child side of proc.mjs's RPC channel: `serve(handlers, ready)` answers `{ id, op, args }` messages
// with `{ id, result }` or `{ id, error }`; op `exit` runs `handlers.exit` (if any) then exits with code 0,
// so that --cpu-prof writes its profile.
export function serve(handlers, ready = {}) {
  if (!process.send) throw new Error('run me through bench/lib/proc.mjs (no IPC channel)');
  process.on('message', async (m) => {
    if (!m || typeof m.op !== 'string') return;
    if (m.op === 'exit') {
      try {
        await handlers.exit?.();
      } finally {
        process.exit(0);
      }
      return;
    }
    const fn = handlers[m.op];
    try {
      if (!fn) throw new Error(`unknown op ${m.op}`);
      const result = await fn(m.args ?? {});
      process.send({ id: m.id, result });
    } catch (error) {
      process.send({ id: m.id, error: error?.stack ?? String(error) });
    }
  });
  // The parent going away ends the child: no orphan holds ports or sockets.
  process.on('disconnect', () => process.exit(0));
  process.send({ ready });
}
