import { openSync, writeSync } from 'node:fs';

/**
 * Test-only: when this variable names a file, every emitter appends each event it emits to it, as one
 * JSON line in egress-guard's own schema, synchronously. The repository's test run sets it so that one
 * last test can validate every event the whole suite produced against the published JSON Schema.
 */
export const EVENT_AUDIT_FILE_ENV = 'EGRESS_GUARD_EVENT_AUDIT_FILE';

// One descriptor per file for the life of the process: opening per event would cost more than the write.
const descriptors = new Map<string, number>();

/**
 * The appender for `EGRESS_GUARD_EVENT_AUDIT_FILE`, or undefined when it is not set. Each line is one
 * write(2) on an O_APPEND descriptor, so lines from parallel test processes never interleave.
 */
export function openAuditFile(env: NodeJS.ProcessEnv = process.env): ((event: object) => void) | undefined {
  const file = env[EVENT_AUDIT_FILE_ENV];
  if (!file) return undefined;
  let fd = descriptors.get(file);
  if (fd === undefined) {
    fd = openSync(file, 'a');
    descriptors.set(file, fd);
  }
  const target = fd;
  return (event) => {
    writeSync(target, `${JSON.stringify(event)}\n`);
  };
}
