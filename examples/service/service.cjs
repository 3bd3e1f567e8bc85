// The same idea in CommonJS, guarded with `node --require @egress-guard/node/register service.cjs`.
const partner = process.env.PARTNER_URL;
fetch(`${partner}/partner/orders/1`)
  .then(
    (res) => console.log(JSON.stringify({ allowed: res.status })),
    (error) => console.log(JSON.stringify({ allowed: error.cause?.code ?? error.message })),
  )
  .then(() =>
    fetch(`${partner}/admin`).then(
      (res) => console.log(JSON.stringify({ denied: res.status })),
      (error) => console.log(JSON.stringify({ denied: error.cause?.code, reason: error.cause?.reason })),
    ),
  );
