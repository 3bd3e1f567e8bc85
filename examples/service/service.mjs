// An "orders" service: GET /order/:id asks the partner API (fetch) and posts a webhook (axios).
// It knows nothing about egress-guard: the guard is preloaded (see package.json "start").
import http from 'node:http';
import axios from 'axios';

const partner = process.env.PARTNER_URL; // e.g. http://localhost:4001
const port = Number(process.env.PORT ?? 0);

async function attempt(label, fn) {
  try {
    return { label, ok: true, value: await fn() };
  } catch (error) {
    const cause = error.cause ?? error;
    return {
      label,
      ok: false,
      code: cause.code,
      reason: cause.reason,
      message: String(cause.message).split('\n')[0],
    };
  }
}

const server = http.createServer(async (req, res) => {
  const id = req.url.split('/').pop();
  const results = [
    await attempt(
      'partner lookup (fetch GET, allowed)',
      async () => (await fetch(`${partner}/partner/orders/${id}`)).status,
    ),
    await attempt(
      'webhook (axios POST, allowed)',
      async () => (await axios.post(`${partner}/hooks/order`, { id })).status,
    ),
    await attempt(
      'exfiltration (axios POST to another path, denied)',
      async () => (await axios.post(`${partner}/upload`, { secrets: 'x' })).status,
    ),
    await attempt(
      'IP literal (fetch, denied)',
      async () => (await fetch(partner.replace('localhost', '127.0.0.1') + '/partner/x')).status,
    ),
  ];
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(results));
});
server.listen(port, '127.0.0.1', () => console.error(`READY ${server.address().port}`));
