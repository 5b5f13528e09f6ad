#!/usr/bin/env node
// Run one browser scenario in Debian's Chromium through playwright-core and print the outcome as JSON.
//
//   node tools/browser/run.cjs SCENARIO.json      (or "-" to read the scenario from stdin)
//
// The scenario is {"steps": [...], "timeoutMs": 15000, "viewport": {"width": 1280, "height": 800},
// "screenshotOnFailure": "/abs/path.png"}; every step is an object with "do" (the action), an optional
// "name" (echoed in the result) and an optional "timeoutMs":
//
//   goto         url, waitUntil ("load")        -> status, url
//   fill         selector, value
//   select       selector, value (an option's value, or a list of them)
//   check        selector
//   click        selector
//   press        selector, key ("Enter")
//   waitFor      selector, state ("visible")
//   waitForUrl   url (a glob, "**/runs/*/")     -> url
//   count        selector                       -> count
//   text         selector (the first match)     -> text (its innerText)
//   evaluate     expression (a JS expression), or function (the source of a JS function, may be async)
//                called with arg                -> value (JSON-serializable)
//   addScriptTag url                            (waits until the script has loaded)
//   screenshot   path, fullPage (true), selector (only that element)  -> path
//
// stdout gets exactly one JSON object: {ok, browserVersion, steps: [{do, name, ...}], failedStep, error,
// console: [{type, text}], pageErrors: [...], failedRequests: [{url, failure}]}. A Content-Security-Policy
// violation is logged to the console as an error starting "securitypolicyviolation". Exit status: 0 when every
// step passed, 1 when a step failed, 2 when the scenario could not be read or the browser not started.
//
// Environment: BARTER_CHROMIUM, the browser to launch (default /usr/bin/chromium). Playwright downloads
// nothing: it only drives that executable, with a fresh profile directory that is removed afterwards.
"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.BARTER_CHROMIUM || "/usr/bin/chromium";
// --headless and --no-sandbox are added by Playwright as well; they are listed so that this is the whole
// command line the machine needs. Without the background-networking switches Chromium keeps calling Google
// services, and on a closed network those refused connections slow and clutter every run.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const DEFAULT_TIMEOUT_MS = 15000;

// One function per step kind: (page, step, timeout) -> extra fields of the step's result.
const ACTIONS = {
  async goto(page, step, timeout) {
    const response = await page.goto(required(step, "url"), { waitUntil: step.waitUntil || "load", timeout });
    return { status: response ? response.status() : null, url: page.url() };
  },
  async fill(page, step, timeout) {
    await page.fill(required(step, "selector"), String(required(step, "value")), { timeout });
    return {};
  },
  async select(page, step, timeout) {
    await page.selectOption(required(step, "selector"), required(step, "value"), { timeout });
    return {};
  },
  async check(page, step, timeout) {
    await page.check(required(step, "selector"), { timeout });
    return {};
  },
  async click(page, step, timeout) {
    await page.click(required(step, "selector"), { timeout });
    return {};
  },
  async press(page, step, timeout) {
    await page.press(required(step, "selector"), required(step, "key"), { timeout });
    return {};
  },
  async waitFor(page, step, timeout) {
    await page.waitForSelector(required(step, "selector"), { state: step.state || "visible", timeout });
    return {};
  },
  async waitForUrl(page, step, timeout) {
    await page.waitForURL(required(step, "url"), { timeout });
    return { url: page.url() };
  },
  async count(page, step) {
    return { count: await page.locator(required(step, "selector")).count() };
  },
  async text(page, step, timeout) {
    return { text: await page.locator(required(step, "selector")).first().innerText({ timeout }) };
  },
  async evaluate(page, step) {
    const value =
      step.function !== undefined
        ? await page.evaluate(compileFunction(step.function), step.arg)
        : await page.evaluate(String(required(step, "expression")));
    return { value: value === undefined ? null : value };
  },
  async addScriptTag(page, step) {
    await page.addScriptTag({ url: required(step, "url") });
    return {};
  },
  async screenshot(page, step, timeout) {
    const file = required(step, "path");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (step.selector) {
      await page.locator(step.selector).first().screenshot({ path: file, timeout });
    } else {
      await page.screenshot({ path: file, fullPage: step.fullPage !== false, timeout });
    }
    return { path: file };
  },
};

function required(step, field) {
  if (step[field] === undefined) {
    throw new Error(`step "${step.do}" needs "${field}"; got ${JSON.stringify(step)}`);
  }
  return step[field];
}

// Playwright runs a string as an expression and calls only real functions, which it sends to the page as
// their source text. So a function's source is turned into a function object here; evaluating a function
// expression only creates it, nothing in its body runs in node.
function compileFunction(source) {
  let compiled;
  try {
    compiled = new Function(`return (${source}\n);`)();
  } catch (error) {
    throw new Error(`"function" is not a JS function expression: ${error.message}`);
  }
  if (typeof compiled !== "function") {
    throw new Error(`"function" must be the source of a function, e.g. "(arg) => arg.x"; was ${source}`);
  }
  return compiled;
}

// Playwright colours its call logs for terminals; the JSON gets plain text.
function plain(message) {
  return String(message).replace(/\u001b\[[0-9;]*m/g, "");
}

function readScenario(argument) {
  if (!argument) {
    throw new Error("usage: node run.cjs SCENARIO.json (or - for stdin)");
  }
  const text = fs.readFileSync(argument === "-" ? 0 : argument, "utf8");
  const scenario = JSON.parse(text);
  if (!Array.isArray(scenario.steps)) {
    throw new Error(`the scenario needs a "steps" list; got keys ${JSON.stringify(Object.keys(scenario))}`);
  }
  scenario.steps.forEach((step, index) => {
    if (!Object.hasOwn(ACTIONS, step.do)) {
      const known = Object.keys(ACTIONS).join(", ");
      throw new Error(`step ${index}: "do" must be one of ${known}; was ${JSON.stringify(step.do)}`);
    }
  });
  return scenario;
}

async function run(scenario, result) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "barter-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: scenario.viewport || { width: 1280, height: 800 },
    });
    result.browserVersion = context.browser() ? context.browser().version() : null;
    // Every Content-Security-Policy violation of every page is logged as a console error (result.console),
    // "securitypolicyviolation <directive> <blocked URI> at <source>:<line>", for the tests to assert on.
    await context.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (event) => {
        console.error(
          `securitypolicyviolation ${event.violatedDirective} ${event.blockedURI || "inline"} at ` +
            `${event.sourceFile || event.documentURI}:${event.lineNumber}`,
        );
      });
    });
    const page = context.pages()[0] || (await context.newPage());
    page.on("console", (message) => result.console.push({ type: message.type(), text: message.text() }));
    page.on("pageerror", (error) => result.pageErrors.push(String(error)));
    page.on("requestfailed", (request) =>
      result.failedRequests.push({ url: request.url(), failure: request.failure()?.errorText ?? null }),
    );
    const defaultTimeout = scenario.timeoutMs || DEFAULT_TIMEOUT_MS;
    for (const [index, step] of scenario.steps.entries()) {
      const started = Date.now();
      try {
        const fields = await ACTIONS[step.do](page, step, step.timeoutMs || defaultTimeout);
        result.steps.push({ do: step.do, name: step.name ?? null, ms: Date.now() - started, ...fields });
      } catch (error) {
        result.failedStep = index;
        result.error = `step ${index} (${step.name || step.do}): ${plain(error.message)}`;
        if (scenario.screenshotOnFailure) {
          await page.screenshot({ path: scenario.screenshotOnFailure, fullPage: true }).catch(() => {});
        }
        return 1;
      }
    }
    result.ok = true;
    return 0;
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

async function main() {
  const result = {
    ok: false,
    browserVersion: null,
    steps: [],
    failedStep: null,
    error: null,
    console: [],
    pageErrors: [],
    failedRequests: [],
  };
  let status;
  try {
    const scenario = readScenario(process.argv[2]);
    status = await run(scenario, result).catch((error) => {
      result.error = `could not run the browser ${CHROMIUM}: ${plain(error.message)}`;
      return 2;
    });
  } catch (error) {
    result.error = error.message;
    status = 2;
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = status;
}

main();
