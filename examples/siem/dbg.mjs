import { spawn } from 'node:child_process';
import { once } from 'node:events';
import pino from 'pino';

const child = spawn(
  process.execPath,
  [
    '-e',
    `
const http = require('node:http');
const server = http.createServer((req, res) => { let b=''; req.on('data', c => b+=c); req.on('end', () => { console.log('GOT', req.url, req.headers['content-type'], b.slice(0, 300)); res.end('{}'); }); });
server.listen(45999, '127.0.0.1', () => console.log('listening'));
setTimeout(() => process.exit(0), 15000);
`,
  ],
  { stdio: 'inherit' },
);
await new Promise((r) => setTimeout(r, 500));
const url = `http://127.0.0.1:45999/v1/logs`;
const transport = pino.transport({
  target: 'pino-opentelemetry-transport',
  options: {
    loggerName: 'x',
    logRecordProcessorOptions: {
      recordProcessorType: 'batch',
      exporterOptions: { protocol: 'http', httpExporterOptions: { url } },
    },
  },
});
transport.on('error', (e) => console.log('ERR', e));
const l = pino(transport);
await once(transport, 'ready');
console.log('ready');
l.info({ a: 1 }, 'hello');
await new Promise((r) => setTimeout(r, 300));
transport.end();
await once(transport, 'close');
console.log('closed');
child.kill();
