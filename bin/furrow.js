#!/usr/bin/env node
// dist/ is built by `npm install` (the prepare script) and by `npm start`.
const entry = new URL('../dist/cli/main.js', import.meta.url);
const { main } = await import(entry.href).catch((err) => {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes(entry.pathname)) throw err;
  process.stderr.write('furrow: not built yet; run "npm run build" (or "npm install") in the Furrow checkout\n');
  process.exit(2);
});

process.exitCode = await main(process.argv.slice(2));
