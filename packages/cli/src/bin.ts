#!/usr/bin/env node
import { main } from './index.js';
import { EXIT, endOnClosedPipe } from './io.js';

endOnClosedPipe();
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // main() answers every error itself; this is a last resort, still one line.
    process.stderr.write(`egress-guard: ${(error as Error).message}\n`);
    process.exitCode = EXIT.usage;
  },
);
