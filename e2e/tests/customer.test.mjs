// The customer's side in a real headless Chromium: signed link in, opt in, opt out of
// everything, Spanish, GPC, an expired link, no JavaScript, the prompt, keyboard only, small
// screens, and zero axe-core (WCAG 2.2 AA) violations on every page. Screenshots of each page, in
// English and Spanish, go to docs/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import { startDemo, launch, screenshots } from './support.mjs';

let demo;
let browser;

before(async () => {
  demo = await startDemo();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await demo?.stop();
});

async function noViolations(page, name) {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']).analyze();
  const summary = result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.length})`);
  assert.deepEqual(summary, [], `${name} has accessibility violations`);
}

/** Follows a signed link as a customer does: the link's page, then "Continue". */
async function openLink(page, url, label = 'Continue') {
  await page.goto(url);
  await page.getByRole('button', { name: label }).click();
  await page.waitForURL(/\/p\/demo$/);
}

async function shot(page, name) {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

test('a customer opens a signed link, opts in with one click and out of everything with one click', async () => {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  await page.goto(await demo.link('cust-e2e'));
  await noViolations(page, 'link landing page');
  await shot(page, 'link-landing-en');
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL(/\/p\/demo$/);
  assert.match(page.url(), /\/p\/demo$/, 'the token is gone from the address bar');
  await page.getByRole('heading', { name: 'Your privacy choices' }).waitFor();
  await noViolations(page, 'preference center (en)');
  await shot(page, 'preference-center-en');

  const ads = page.locator('#purpose-ads-targeting');
  await page.evaluate(() => { window.stillThisPage = true; });
  let clicksIn = 0;
  await ads.getByRole('button', { name: 'Yes, opt in' }).click();
  clicksIn += 1;
  await page.locator('#purpose-ads-targeting').getByText('You said yes').waitFor();
  assert.equal(await page.evaluate(() => window.stillThisPage), true, 'with JavaScript the card updates in place, without a reload');
  await page.getByRole('status').getByText('Saved.').waitFor();
  assert.deepEqual(await demo.decision('cust-e2e', 'ads-targeting'), { allowed: true, reason: 'granted' });

  let clicksOut = 0;
  await page.locator('#purpose-ads-targeting').getByRole('button', { name: 'No, opt out' }).click();
  clicksOut += 1;
  await page.locator('#purpose-ads-targeting').getByText('You said no').waitFor();
  assert.ok(clicksOut <= clicksIn, 'opting out never takes more clicks than opting in');
  assert.deepEqual(await demo.decision('cust-e2e', 'ads-targeting'), { allowed: false, reason: 'withdrawn' });

  for (const purpose of ['ads-targeting', 'personalised-offers', 'partner-sharing']) {
    await page.locator(`#purpose-${purpose}`).getByRole('button', { name: 'Yes, opt in' }).click();
  }
  await page.getByRole('button', { name: 'Opt out of everything' }).click();
  await page.getByText('you are opted out of everything').waitFor();
  for (const purpose of ['ads-targeting', 'personalised-offers', 'partner-sharing', 'network-analytics']) {
    const d = await demo.decision('cust-e2e', purpose);
    assert.equal(d.allowed, false, `${purpose} after opting out of everything`);
    assert.equal(d.reason, 'withdrawn');
  }

  await page.getByRole('link', { name: 'Your history' }).click();
  await page.getByRole('heading', { name: 'Your history' }).waitFor();
  await noViolations(page, 'history (en)');
  await shot(page, 'history-en');
  await context.close();
});

test('the pages speak Spanish to a Spanish browser', async () => {
  const context = await browser.newContext({ locale: 'es-ES' });
  const page = await context.newPage();
  await openLink(page, await demo.link('cliente-e2e'), 'Continuar');
  await page.getByRole('heading', { name: 'Tus opciones de privacidad' }).waitFor();
  assert.equal(await page.getAttribute('html', 'lang'), 'es');
  await noViolations(page, 'preference center (es)');
  await shot(page, 'preference-center-es');
  await page.locator('#purpose-partner-sharing').getByRole('button', { name: 'Sí, acepto' }).click();
  await page.locator('#purpose-partner-sharing').getByText('Dijiste que sí').waitFor();
  await page.getByRole('link', { name: 'Tu historial' }).click();
  await noViolations(page, 'history (es)');
  await shot(page, 'history-es');
  await context.close();
});

test('the browser privacy signal is honoured and said plainly', async () => {
  const context = await browser.newContext({ locale: 'en-US', extraHTTPHeaders: { 'Sec-GPC': '1' } });
  const page = await context.newPage();
  await openLink(page, await demo.link('cust-gpc'));
  await page.getByText("Your browser's Global Privacy Control signal was applied").waitFor();
  assert.equal((await demo.decision('cust-gpc', 'partner-sharing')).reason, 'withdrawn');
  const history = (await demo.api('GET', '/v1/subjects/cust-gpc/history')).body.events;
  assert.ok(history.length > 0 && history.every((e) => e.method === 'gpc'));
  await context.close();
});

test('an expired link gets a friendly page and no access', async () => {
  const url = await demo.link('cust-late', 1);
  await new Promise((r) => setTimeout(r, 1500));
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  const response = await page.goto(url);
  assert.equal(response.status(), 410);
  await page.getByRole('heading', { name: 'This link has expired' }).waitFor();
  await noViolations(page, 'expired link page');
  await shot(page, 'expired-link-en');
  const back = await page.goto(url.replace(/\/open\?.*$/, ''));
  assert.equal(back.status(), 401, 'no session was started');
  await context.close();
});

test('everything works with JavaScript disabled', async () => {
  const context = await browser.newContext({ locale: 'en-US', javaScriptEnabled: false });
  const page = await context.newPage();
  await openLink(page, await demo.link('cust-nojs'));
  await page.locator('#purpose-personalised-offers').getByRole('button', { name: 'Yes, opt in' }).click();
  await page.getByText('Saved.').waitFor();
  assert.equal((await demo.decision('cust-nojs', 'personalised-offers')).allowed, true);
  await page.getByRole('button', { name: 'Opt out of everything' }).click();
  await page.getByText('you are opted out of everything').waitFor();
  assert.equal((await demo.decision('cust-nojs', 'personalised-offers')).allowed, false);
  await context.close();
});

test('the consent prompt offers yes and no as equals, by keyboard alone', async () => {
  for (const [locale, yes, no, name] of [['en-US', 'Yes, opt in', 'No thanks', 'prompt-en'], ['es-ES', 'Sí, acepto', 'No, gracias', 'prompt-es']]) {
    const context = await browser.newContext({ locale });
    const page = await context.newPage();
    await page.goto((await demo.link(`cust-prompt-${locale}`)).replace('/open?', '/ask/ads-targeting?'));
    const yesBox = await page.getByRole('button', { name: yes }).boundingBox();
    const noBox = await page.getByRole('button', { name: no }).boundingBox();
    assert.equal(Math.round(yesBox.width), Math.round(noBox.width), 'same width');
    assert.equal(Math.round(yesBox.height), Math.round(noBox.height), 'same height');
    const style = async (label) => page.getByRole('button', { name: label }).evaluate((b) => {
      const s = getComputedStyle(b);
      return [s.fontWeight, s.fontSize, s.backgroundColor, s.color].join(' ');
    });
    assert.equal(await style(yes), await style(no), 'same weight and colours');
    await noViolations(page, `prompt (${locale})`);
    await shot(page, name);
    // Keyboard only: Tab to "no" and press Enter. One key press, as for "yes".
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement?.textContent);
    assert.equal(focused, no);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: locale === 'en-US' ? 'Thank you' : 'Gracias' }).waitFor();
    assert.equal((await demo.decision(`cust-prompt-${locale}`, 'ads-targeting')).reason, 'withdrawn');
    await context.close();
  }
});

test('the preference center fits a 320 px screen and 200% zoom', async () => {
  for (const [width, scale] of [[320, 1], [640, 2]]) {
    const context = await browser.newContext({ locale: 'en-US', viewport: { width, height: 800 }, deviceScaleFactor: scale });
    const page = await context.newPage();
    await openLink(page, await demo.link(`cust-narrow-${width}`));
    if (scale === 2) await page.evaluate(() => { document.body.style.zoom = '2'; });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at ${width}px x${scale}: ${overflow}px too wide`);
    if (width === 320) await shot(page, 'preference-center-320px');
    await context.close();
  }
});

test('from the prompt, saying no takes no more clicks than saying yes', async () => {
  const clicks = {};
  for (const [answer, label] of [['yes', 'Yes, opt in'], ['no', 'No thanks']]) {
    const context = await browser.newContext({ locale: 'en-US' });
    const page = await context.newPage();
    const subject = `cust-symmetry-${answer}`;
    await page.goto((await demo.link(subject)).replace('/open?', '/ask/partner-sharing?'));
    clicks[answer] = 0;
    await page.getByRole('button', { name: label }).click();
    clicks[answer] += 1;
    await page.getByRole('heading', { name: 'Thank you' }).waitFor();
    await noViolations(page, 'thank-you page');
    const expected = answer === 'yes' ? 'granted' : 'withdrawn';
    assert.equal((await demo.decision(subject, 'partner-sharing')).reason, expected);
    await context.close();
  }
  assert.ok(clicks.no <= clicks.yes, `no took ${clicks.no} clicks, yes ${clicks.yes}`);
});
