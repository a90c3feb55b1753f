// Drives the console in Debian's Chromium with playwright-core, for
// tests/e2e/console.rs: logs in (a wrong token first), reads the firing
// alerts, opens one, silences it with a comment and expires it (pausing after
// each so the test can check `conveyor silence list`), opens a
// reconciliation's exceptions and its CSV, looks at the scorecards and the
// outbox, presses "sync now" and waits for the run, then finds the alert
// whose entity is `<script>alert(1)</script>` and reads it as text. Takes a
// screenshot of every page. Prints one JSON object per line: events the test
// answers on stdin with a line, then {"event": "done", "report": {...}}.
//
// Usage: node drive.mjs BASE_URL TOKEN_FILE OUT_DIR   (NODE_PATH: node_modules with playwright-core)

import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const require = createRequire(import.meta.url);
// NODE_PATH is honoured by require (not by import), so load it that way.
const { chromium } = require('playwright-core');

const [base, tokenFile, outDir] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const report = { dialogs: [], screenshots: [], console_errors: [] };
const lines = readline.createInterface({ input: process.stdin });
const answers = lines[Symbol.asyncIterator]();

function emit(event, data = {}) {
  process.stdout.write(JSON.stringify({ event, ...data }) + '\n');
}

/** Tells the test, then waits for its answer line. */
async function pause(event, data) {
  emit(event, data);
  const { value, done } = await answers.next();
  if (done || value.trim() !== 'ok') throw new Error(`the test answered ${JSON.stringify(value)} to ${event}`);
}

async function shot(page, name) {
  const file = path.join(outDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  report.screenshots.push(file);
}

const userData = mkdtempSync(path.join(tmpdir(), 'conveyor-chromium-'));
const context = await chromium.launchPersistentContext(userData, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run',
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(20000);
// An alert() from injected markup would open a dialog: count any.
page.on('dialog', async (d) => { report.dialogs.push(d.message()); await d.dismiss(); });
page.on('console', (m) => { if (m.type() === 'error') report.console_errors.push(m.text()); });

try {
  // Without a session: sent to the login page.
  await page.goto(`${base}/console/alerts`);
  report.redirected_to = new URL(page.url()).pathname;
  await shot(page, '01-login');

  // A wrong token: refused, with a message.
  await page.fill('input[name=token]', 'not-the-token');
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/console/login') && r.request().method() === 'POST'),
    page.click('button[type=submit]'),
  ]);
  report.wrong_token_status = refused.status();
  report.wrong_token_message = (await page.textContent('#login-error')) ?? '';
  await shot(page, '02-login-refused');

  // The right token: in, on the page first asked for.
  await page.fill('input[name=token]', token);
  await page.fill('input[name=name]', 'E2E Lead');
  await Promise.all([page.waitForURL('**/console/alerts'), page.click('button[type=submit]')]);
  report.cookies = (await context.cookies()).map((c) => ({
    name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path, value_is_token: c.value === token,
  }));
  report.firing = await page.$$eval('tr.alert[data-state=firing]', (rows) =>
    rows.map((r) => ({ rule: r.dataset.rule, entity: r.dataset.entity })));
  await shot(page, '03-alerts');

  // Open a firing CSAT alert.
  const target = report.firing.find((a) => a.rule === 'csat_below_target') ?? report.firing[0];
  report.opened = target;
  await Promise.all([
    page.waitForURL('**/console/alert?**'),
    page.click(`tr.alert[data-rule="${target.rule}"][data-entity="${target.entity}"] a.entity`),
  ]);
  report.alert_title = (await page.textContent('#alert-title')).trim().replace(/\s+/g, ' ');
  report.alert_has_chart = (await page.$$('svg.chart circle')).length;
  report.alert_has_threshold = (await page.$$('svg.chart line.t-warn')).length;
  report.notifications = await page.$$eval('#notifications tbody tr', (rows) =>
    rows.map((r) => r.textContent.replace(/\s+/g, ' ').trim()));
  await shot(page, '04-alert');

  // Silence it with a comment (markup in it stays text).
  const comment = 'Agent on leave <b>until Monday</b>';
  await page.fill('#silence-form input[name=comment]', comment);
  await page.selectOption('#silence-form select[name=duration]', '1d');
  await Promise.all([page.waitForURL('**/console/alert?**'), page.click('#silence-form button[type=submit]')]);
  report.silence_flash = (await page.textContent('#flash')) ?? '';
  const row = await page.$('#alert-silences tr[data-silence-id]');
  const silenceId = Number(await row.getAttribute('data-silence-id'));
  report.silence_comment_shown = (await row.$eval('td.comment', (td) => td.textContent)) ?? '';
  report.silence_comment_bold = (await row.$$('td.comment b')).length;
  report.alert_silenced_badge = (await page.$$('#alert-title .badge.silenced')).length;
  await shot(page, '05-alert-silenced');
  await pause('silenced', { id: silenceId, rule: target.rule, entity: target.entity, comment });

  // Expire it from the page.
  await Promise.all([
    page.waitForURL('**/console/alert?**'),
    page.click(`#alert-silences tr[data-silence-id="${silenceId}"] button.expire`),
  ]);
  report.expire_flash = (await page.textContent('#flash')) ?? '';
  await shot(page, '06-alert-expired');
  await pause('expired', { id: silenceId });

  // Reconciliations, then one's exceptions, filtered, and the CSV.
  await page.goto(`${base}/console/reconciliations`);
  report.recon_charts = (await page.$$('section.recon svg.chart')).length;
  await shot(page, '07-reconciliations');
  await Promise.all([
    page.waitForURL('**/console/reconciliations/placement_without_invoice**'),
    page.click('#recon-placement_without_invoice a.exceptions'),
  ]);
  report.exceptions = await page.$$eval('#exceptions tr.exception', (rows) =>
    rows.map((r) => Array.from(r.cells).map((c) => c.textContent.trim())));
  await shot(page, '08-exceptions');
  await page.selectOption('select[name=status]', 'missing_right');
  await Promise.all([page.waitForURL('**status=missing_right**'), page.click('form.filters button[type=submit]')]);
  report.missing_right_rows = (await page.$$('#exceptions tr.exception')).length;
  const csvHref = await page.getAttribute('#csv', 'href');
  const csv = await page.request.get(new URL(csvHref, base).toString());
  report.csv_status = csv.status();
  report.csv_type = csv.headers()['content-type'];
  report.csv_lines = (await csv.text()).trim().split('\n');

  // Scorecards and the outbox.
  await page.goto(`${base}/console/scorecards`);
  report.teams = await page.$$eval('section.team h2', (hs) => hs.map((h) => h.firstChild.textContent.trim()));
  await shot(page, '09-scorecards');
  await page.goto(`${base}/console/outbox`);
  report.delivered_rows = (await page.$$('#delivered tbody tr')).length;
  await shot(page, '10-outbox');

  // Sources: "sync now" for the timekeeping source, and its run appears.
  await page.goto(`${base}/console/sources`);
  const latestRun = async () => {
    const ids = await page.$$eval('#latest-runs tr[data-source=timekeeping]', (rows) =>
      rows.map((r) => ({ id: Number(r.dataset.runId), outcome: r.querySelector('.badge').textContent })));
    return ids.length ? ids.reduce((a, b) => (a.id > b.id ? a : b)) : { id: 0, outcome: '' };
  };
  report.run_before = await latestRun();
  report.source_charts = (await page.$$('section.source svg.chart')).length;
  await shot(page, '11-sources');
  await Promise.all([page.waitForURL('**/console/sources'), page.click('button.sync[data-source=timekeeping]')]);
  report.sync_flash = (await page.textContent('#flash')) ?? '';
  const deadline = Date.now() + 90000;
  let after = await latestRun();
  while ((after.id <= report.run_before.id || after.outcome === 'running') && Date.now() < deadline) {
    await page.waitForTimeout(1000);
    await page.goto(`${base}/console/sources`);
    after = await latestRun();
  }
  report.run_after = after;
  await shot(page, '12-sources-after-sync');

  // The alert the synced file raised, named <script>alert(1)</script>.
  let xss = [];
  const xssDeadline = Date.now() + 60000;
  while (!xss.length && Date.now() < xssDeadline) {
    await page.goto(`${base}/console/alerts?rule=short_timekeeping_day`);
    xss = await page.$$eval('tr.alert a.entity', (as) => as.map((a) => a.textContent));
    if (!xss.length) await page.waitForTimeout(1000);
  }
  report.xss_entity_text = xss;
  report.xss_team_text = await page.$$eval('tr.alert td:nth-child(5)', (tds) => tds.map((t) => t.textContent));
  report.xss_script_elements = await page.$$eval('script', (s) => s.length);
  const html = await page.content();
  report.xss_html_escaped = html.includes('&lt;script&gt;alert(1)&lt;/script&gt;');
  report.xss_html_raw = html.includes('<script>alert(1)</script>');
  await shot(page, '13-alerts-xss');
  if (xss.length) {
    await Promise.all([page.waitForURL('**/console/alert?**'), page.click('tr.alert a.entity')]);
    report.xss_alert_title = (await page.textContent('#alert-title')).trim();
    await shot(page, '14-alert-xss');
  }

  // Log out: the pages send to the login again.
  await Promise.all([page.waitForURL('**/console/login'), page.click('header form.logout button')]);
  await page.goto(`${base}/console/outbox`);
  report.after_logout = new URL(page.url()).pathname;
  emit('done', { report });
} catch (e) {
  await shot(page, '99-failure').catch(() => {});
  emit('failed', { error: String(e && e.stack ? e.stack : e), report });
  process.exitCode = 1;
} finally {
  await context.close();
  lines.close();
}
