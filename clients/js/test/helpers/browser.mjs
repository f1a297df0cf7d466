// Headless Chromium for page tests: Debian's chromium driven by
// playwright-core (which downloads no browser of its own).

import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));

export const CHROMIUM = process.env.FANOUT_CHROMIUM ?? "/usr/bin/chromium";
/** Where screenshots go (test artefacts, not committed). */
export const ARTIFACTS = process.env.FANOUT_TEST_ARTIFACTS ?? path.resolve(here, "../../test-results");

export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: install it (apt-get install chromium; ./scripts/test.sh does) or set FANOUT_CHROMIUM`,
    );
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // No sandbox (the tests may run as root in a container), and none of
    // Chromium's own network traffic, which a closed network refuses.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
    ],
  });
}

/** Writes a full-page screenshot to the artefacts folder; returns its path. */
export async function screenshot(page, name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
