// What every browser script here shares: Debian's Chromium, started the way this machine
// needs, through playwright-core (tests/browser/node_modules, from `npm ci`).

import { chromium } from 'playwright-core';

// Without the background-networking flags Chromium keeps calling home, which a closed
// network answers slowly and noisily. --no-sandbox: the tests may run as root.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Headless Chromium (`CHROMIUM_PATH`, else Debian's /usr/bin/chromium). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}
