#!/usr/bin/env node
// Drive the Microsoft 365 Agents Playground web UI in headless Chromium from a JSON list of steps.
//
// Usage: node tests/js/playground-ui.mjs STEPS.json
//
// STEPS.json: {"url": "http://127.0.0.1:PORT", "screenshotDir": "/path", "steps": [...],
//              "timeout": 15000, "keepLogPanel": false, "timezoneId": "UTC"}
// Card steps act on the last `.ac-adaptiveCard` on the page and find inputs by their label text (the
// renderer's <label for=...>):
//   {"send": "text"}                         type in the compose box, press Enter, wait for the POST
//   {"waitText": "substring", "timeout": ms} until the last card, else the page, contains it
//   {"fillDate": {"label": "Date", "date": "2026-11-23"}}
//                                            date picker: open, previous/next month, click the day
//                                            button named "23, November, 2026"
//   {"fillTime": {"label": "Start", "time": "2:00 PM"}}
//                                            time combobox: click, fill, Enter; only the picker's own
//                                            options (every 30 min, "2:00 PM" or "14:00") are accepted
//   {"fillText": {"label": "Subject", "text": "..."}}
//   {"fillNumber": {"label": "Attendees", "value": 5}}
//   {"select": {"label": "Room", "option": "Borealis"}}
//                                            choice set by choice title; "option": [...] for multi-select
//   {"toggle": {"label": "Online meeting", "checked": true}}
//                                            Input.Toggle; without "checked" it is clicked once
//   {"click": "Button name"}                 card button by role and exact name; waits for the invoke
//   {"screenshot": "name"}                   SCREENSHOTDIR/name.png
// Every step also takes an optional "timeout" (ms).
//
// Prints one JSON object on stdout: {ok, step, steps, error, screenshots, lastCardText, invokes,
// blocked, elapsedMs}; `step` is the index of the step that failed, or the number of steps when all
// passed. Exits 1 on failure (after a screenshot `failure-step-N.png`), 2 on bad arguments.
//
// Only the Playground's own origin is reachable: every other request (the UI's CDN fonts and
// animations) is aborted and listed in `blocked`. The browser's time zone is UTC unless "timezoneId"
// says otherwise (the date picker's "today" depends on it).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const DEFAULT_TIMEOUT = 15000;
const MONTHS = [
  'January', 'February', 'March', 'April', 'May', 'June',
  'July', 'August', 'September', 'October', 'November', 'December',
];
const COMPOSE_BOX = '[data-lexical-editor="true"][contenteditable="true"]';
const CARD = '.ac-adaptiveCard';

class StepError extends Error {}

function lastCard(page) {
  return page.locator(CARD).last();
}

function normalise(text) {
  return (text || '').replace(/\s+/g, ' ').trim();
}

// The input an Adaptive Card label belongs to: the renderer writes <label for=ID> for every labelled input.
async function inputByLabel(page, label, timeout) {
  const card = lastCard(page);
  await card.waitFor({ state: 'visible', timeout });
  const deadline = Date.now() + timeout;
  for (;;) {
    const target = await card.locator('label[for]').evaluateAll((labels, wanted) => {
      const norm = (t) => (t || '').replace(/\s+/g, ' ').trim();
      const hit = labels.find((l) => norm(l.textContent) === wanted || norm(l.textContent) === `${wanted} *`);
      return hit ? hit.getAttribute('for') : null;
    }, normalise(label));
    if (target) return card.locator(`[id="${target}"]`);
    if (Date.now() > deadline) {
      const labels = await card.locator('label[for]').allTextContents();
      throw new StepError(`no input labelled ${JSON.stringify(label)} in the last card (labels: ${JSON.stringify(labels.map(normalise))})`);
    }
    await page.waitForTimeout(100);
  }
}

function parseIsoDate(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(value));
  if (!m) throw new StepError(`date must be YYYY-MM-DD, got ${JSON.stringify(value)}`);
  return { year: Number(m[1]), month: Number(m[2]) - 1, day: Number(m[3]) };
}

async function shownMonth(dialog) {
  const names = await dialog.getByRole('button').evaluateAll((buttons) =>
    buttons.map((b) => (b.getAttribute('aria-label') || b.textContent || '').trim()));
  for (const name of names) {
    const m = /^([A-Z][a-z]+) (\d{4})$/.exec(name);
    if (m && MONTHS.includes(m[1])) return { year: Number(m[2]), month: MONTHS.indexOf(m[1]) };
  }
  return null;
}

async function fillDate(page, { label, date }, timeout) {
  const { year, month, day } = parseIsoDate(date);
  const input = await inputByLabel(page, label, timeout);
  await input.click({ timeout });
  const dialog = page.getByRole('dialog', { name: 'Calendar' }).last();
  await dialog.waitFor({ state: 'visible', timeout });
  for (let i = 0; i < 240; i += 1) {
    const shown = await shownMonth(dialog);
    if (!shown) throw new StepError('cannot read the month shown by the date picker');
    const delta = (year - shown.year) * 12 + (month - shown.month);
    if (delta === 0) break;
    const button = dialog.getByRole('button', { name: delta > 0 ? /^Next month/ : /^Previous month/ });
    await button.click({ timeout });
    // Wait for the header to change before reading it again.
    await page.waitForFunction(
      ([before]) => !Array.from(document.querySelectorAll('[role="dialog"] button'))
        .some((b) => (b.getAttribute('aria-label') || b.textContent || '').trim() === before),
      [`${MONTHS[shown.month]} ${shown.year}`],
      { timeout },
    );
  }
  const dayName = `${day}, ${MONTHS[month]}, ${year}`;
  const dayButton = dialog.getByRole('button', { name: dayName, exact: true });
  if ((await dayButton.count()) === 0) throw new StepError(`date picker shows no day button ${JSON.stringify(dayName)}`);
  await dayButton.first().click({ timeout });
  await dialog.waitFor({ state: 'hidden', timeout }).catch(() => page.keyboard.press('Escape'));
  const value = await input.inputValue();
  if (!value) throw new StepError(`date picker ${JSON.stringify(label)} is still empty after clicking ${dayName}`);
  return value;
}

async function openOptions(page, input, timeout) {
  await input.click({ timeout });
  const popup = page.locator('[role="listbox"], [role="menu"]').last();
  try {
    await popup.waitFor({ state: 'visible', timeout: Math.min(timeout, 3000) });
  } catch {
    // Clicking the text input does not always open the list: use the chevron next to it.
    const chevron = input.locator('xpath=..').getByRole('button').first();
    await chevron.click({ timeout });
    await popup.waitFor({ state: 'visible', timeout });
  }
  return popup;
}

async function optionNames(popup) {
  return popup.locator('[role="option"], [role="menuitemcheckbox"], [role="menuitemradio"]').allTextContents();
}

async function fillTime(page, { label, time }, timeout) {
  const input = await inputByLabel(page, label, timeout);
  await input.click({ timeout });
  await input.fill(String(time), { timeout });
  await input.press('Enter', { timeout });
  let value = await input.inputValue();
  if (!value) {
    // Not one of the picker's options (it accepts no free text): list what it offers.
    const popup = await openOptions(page, input, timeout).catch(() => null);
    const offered = popup ? (await optionNames(popup)).map(normalise) : [];
    await page.keyboard.press('Escape');
    throw new StepError(
      `time picker ${JSON.stringify(label)} did not accept ${JSON.stringify(time)}; it takes one of its options `
      + `(${offered.slice(0, 6).join(', ')}${offered.length > 6 ? ', ...' : ''})`,
    );
  }
  // Blur so the card reads the committed value.
  await input.press('Tab').catch(() => {});
  value = await input.inputValue();
  return value;
}

async function fillText(page, { label, text }, timeout) {
  const input = await inputByLabel(page, label, timeout);
  await input.fill(String(text), { timeout });
  return input.inputValue();
}

async function fillNumber(page, { label, value }, timeout) {
  const input = await inputByLabel(page, label, timeout);
  await input.fill(String(value), { timeout });
  await input.press('Tab').catch(() => {});
  const shown = await input.inputValue();
  if (normalise(shown) !== normalise(String(value))) {
    throw new StepError(`number input ${JSON.stringify(label)} shows ${JSON.stringify(shown)} after filling ${value}`);
  }
  return shown;
}

async function select(page, { label, option }, timeout) {
  const wanted = Array.isArray(option) ? option.map(String) : [String(option)];
  const target = await inputByLabel(page, label, timeout);
  const role = await target.getAttribute('role');
  if (role === 'combobox') {
    // Compact choice set: a Fluent combobox; single choice lists `option`s, multi-select `menuitemcheckbox`es.
    const popup = await openOptions(page, target, timeout);
    for (const name of wanted) {
      const item = popup.locator('[role="option"], [role="menuitemcheckbox"], [role="menuitemradio"]')
        .filter({ hasText: new RegExp(`^\\s*${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`) });
      if ((await item.count()) === 0) {
        const offered = (await optionNames(popup)).map(normalise);
        throw new StepError(`choice set ${JSON.stringify(label)} has no option ${JSON.stringify(name)} (${offered.join(', ')})`);
      }
      const checked = await item.first().getAttribute('aria-checked');
      if (checked !== 'true') await item.first().click({ timeout });
    }
    if (await popup.isVisible()) await page.keyboard.press('Escape');
    return target.inputValue();
  }
  // Expanded choice set: radio buttons (single) or checkboxes (multi-select) inside the labelled container.
  // Their accessible names differ (radio "First", checkbox "Extras Coffee"): match each input's own <label for>.
  const choices = await target.locator('input[type="radio"], input[type="checkbox"]').evaluateAll((inputs) => {
    const norm = (t) => (t || '').replace(/\s+/g, ' ').trim();
    return inputs.map((input) => {
      const own = input.id ? document.querySelector(`label[for="${CSS.escape(input.id)}"]`) : null;
      return { id: input.id, name: norm(own ? own.textContent : input.getAttribute('aria-label')) };
    });
  });
  for (const name of wanted) {
    const hit = choices.find((c) => c.name === normalise(name));
    if (!hit || !hit.id) {
      throw new StepError(`choice set ${JSON.stringify(label)} has no choice ${JSON.stringify(name)} (${choices.map((c) => c.name).join(', ')})`);
    }
    await target.locator(`[id="${hit.id}"]`).check({ timeout });
  }
  return wanted.join(',');
}

async function toggle(page, { label, checked }, timeout) {
  const input = await inputByLabel(page, label, timeout);
  if (typeof checked === 'boolean') await input.setChecked(checked, { timeout });
  else await input.click({ timeout });
  return input.isChecked();
}

async function send(page, text, timeout, state) {
  const box = page.locator(COMPOSE_BOX).last();
  await box.waitFor({ state: 'visible', timeout });
  const posted = page.waitForResponse(
    (r) => r.request().method() === 'POST' && /\/_conversation\/v1\/conversations\/[^/]+\/messages$/.test(new URL(r.url()).pathname),
    { timeout },
  );
  await box.fill(String(text), { timeout });
  if (normalise(await box.innerText()) !== normalise(String(text))) {
    throw new StepError(`compose box shows ${JSON.stringify(await box.innerText())} instead of the text to send`);
  }
  await box.press('Enter', { timeout });
  const response = await posted;
  if (!response.ok()) throw new StepError(`sending the message answered HTTP ${response.status()}`);
  state.sent += 1;
  return (await response.json().catch(() => ({}))).messageId;
}

async function waitText(page, text, timeout) {
  const wanted = String(text);
  const deadline = Date.now() + timeout;
  for (;;) {
    const cards = page.locator(CARD);
    if ((await cards.count()) > 0) {
      const cardText = await cards.last().innerText().catch(() => '');
      if (cardText.includes(wanted)) return 'card';
    }
    const pageText = await page.locator('body').innerText().catch(() => '');
    if (pageText.includes(wanted)) return 'page';
    if (Date.now() > deadline) throw new StepError(`text ${JSON.stringify(wanted)} did not appear within ${timeout} ms`);
    await page.waitForTimeout(100);
  }
}

async function click(page, name, timeout, state) {
  const card = lastCard(page);
  await card.waitFor({ state: 'visible', timeout });
  const button = card.getByRole('button', { name: String(name), exact: true });
  try {
    await button.first().waitFor({ state: 'visible', timeout });
  } catch {
    const names = await card.getByRole('button').evaluateAll((bs) =>
      bs.map((b) => (b.getAttribute('aria-label') || b.textContent || '').trim()));
    throw new StepError(
      `no button ${JSON.stringify(name)} in the last card (buttons: ${JSON.stringify(names)})`,
    );
  }
  const before = state.invokeRequests;
  await button.first().click({ timeout });
  // An Action.Execute posts an invoke: wait for its answer so the next step sees the updated card.
  const started = Date.now();
  while (state.invokeRequests === before && Date.now() - started < 500) await page.waitForTimeout(50);
  if (state.invokeRequests > before) {
    while (state.invokeResponses < state.invokeRequests) {
      if (Date.now() - started > timeout) throw new StepError(`the invoke after clicking ${JSON.stringify(name)} got no answer within ${timeout} ms`);
      await page.waitForTimeout(50);
    }
    const last = state.invokes[state.invokes.length - 1];
    if (last && last.status !== 200) throw new StepError(`the invoke after clicking ${JSON.stringify(name)} answered HTTP ${last.status}`);
    // Let React render the card from the invoke answer.
    await page.waitForTimeout(200);
  }
}

async function screenshot(page, dir, name, state) {
  const safe = String(name).replace(/[^A-Za-z0-9._-]/g, '_');
  const file = path.join(dir, `${safe}.png`);
  await page.screenshot({ path: file, fullPage: false });
  state.screenshots.push(file);
  return file;
}

async function runStep(page, step, spec, state) {
  const timeout = Number(step.timeout ?? spec.timeout ?? DEFAULT_TIMEOUT);
  const kinds = Object.keys(step).filter((k) => k !== 'timeout');
  if (kinds.length !== 1) throw new StepError(`a step has exactly one action besides "timeout": ${JSON.stringify(step)}`);
  const [kind] = kinds;
  const arg = step[kind];
  switch (kind) {
    case 'send': return send(page, arg, timeout, state);
    case 'waitText': return waitText(page, arg, timeout);
    case 'fillDate': return fillDate(page, arg, timeout);
    case 'fillTime': return fillTime(page, arg, timeout);
    case 'fillText': return fillText(page, arg, timeout);
    case 'fillNumber': return fillNumber(page, arg, timeout);
    case 'select': return select(page, arg, timeout);
    case 'toggle': return toggle(page, arg, timeout);
    case 'click': return click(page, arg, timeout, state);
    case 'screenshot': return screenshot(page, spec.screenshotDir, arg, state);
    default: throw new StepError(`unknown step type ${JSON.stringify(kind)}`);
  }
}

// Open the UI and wait until it is usable: config loaded, conversation stream open, compose box shown.
async function openPlayground(page, spec) {
  const timeout = Number(spec.timeout ?? DEFAULT_TIMEOUT) * 2;
  const configLoaded = page.waitForResponse((r) => new URL(r.url()).pathname === '/_internal/v1/config', { timeout });
  const streamOpen = page.waitForEvent('websocket', {
    predicate: (ws) => ws.url().includes('/_ws_conversation/'),
    timeout,
  });
  await page.goto(spec.url, { timeout, waitUntil: 'load' });
  await Promise.all([configLoaded, streamOpen]);
  await page.locator(COMPOSE_BOX).last().waitFor({ state: 'visible', timeout });
  if (!spec.keepLogPanel) {
    // The log panel repeats message texts; hide it so waitText and screenshots show the conversation.
    const hide = page.getByRole('button', { name: 'Hide log panel' });
    if (await hide.count()) await hide.first().click({ timeout: 2000 }).catch(() => {});
  }
}

async function main() {
  const specFile = process.argv[2];
  if (!specFile) {
    process.stderr.write('usage: node playground-ui.mjs STEPS.json\n');
    process.exit(2);
  }
  const spec = JSON.parse(fs.readFileSync(specFile, 'utf8'));
  if (!spec.url || !Array.isArray(spec.steps)) {
    process.stderr.write('STEPS.json needs "url" and "steps"\n');
    process.exit(2);
  }
  spec.screenshotDir = spec.screenshotDir || fs.mkdtempSync(path.join(os.tmpdir(), 'playground-shots-'));
  fs.mkdirSync(spec.screenshotDir, { recursive: true });
  const origin = new URL(spec.url).origin;
  const wsOrigin = origin.replace(/^http/, 'ws');

  const started = Date.now();
  const state = {
    sent: 0, invokeRequests: 0, invokeResponses: 0, invokes: [], screenshots: [], blocked: [],
  };
  const result = {
    ok: false, step: 0, steps: spec.steps.length, error: null, screenshots: state.screenshots,
    lastCardText: null, invokes: state.invokes, blocked: state.blocked, elapsedMs: 0,
  };
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'playground-chromium-'));
  let context;
  let page;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 1000 },
      locale: 'en-US',
      timezoneId: spec.timezoneId || 'UTC',
      serviceWorkers: 'block',
    });
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(`${origin}/`) || url === origin || url.startsWith(`${wsOrigin}/`)) return route.continue();
      state.blocked.push(url);
      return route.abort();
    });
    page = context.pages()[0] ?? await context.newPage();
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/_conversation/v1/invoke') state.invokeRequests += 1;
    });
    page.on('response', async (r) => {
      if (new URL(r.url()).pathname !== '/_conversation/v1/invoke') return;
      let body = null;
      try { body = await r.json(); } catch { body = null; }
      state.invokes.push({ status: r.status(), body });
      state.invokeResponses += 1;
    });
    page.on('requestfailed', (r) => {
      if (new URL(r.url()).pathname === '/_conversation/v1/invoke') {
        state.invokes.push({ status: 0, body: null, error: r.failure()?.errorText });
        state.invokeResponses += 1;
      }
    });
    await openPlayground(page, spec);
    for (let i = 0; i < spec.steps.length; i += 1) {
      result.step = i;
      await runStep(page, spec.steps[i], spec, state);
    }
    result.step = spec.steps.length;
    result.ok = true;
  } catch (err) {
    result.error = err instanceof StepError ? err.message : String(err && err.stack ? err.stack : err).split('\n').slice(0, 6).join('\n');
    if (page) {
      await screenshot(page, spec.screenshotDir, `failure-step-${result.step}`, state).catch(() => {});
    }
  } finally {
    if (page) {
      const cards = page.locator(CARD);
      if ((await cards.count().catch(() => 0)) > 0) result.lastCardText = await cards.last().innerText().catch(() => null);
    }
    if (context) await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  result.elapsedMs = Date.now() - started;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(result.ok ? 0 : 1);
}

main();
