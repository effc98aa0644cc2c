// Playwright against a real `whatstyle serve` (started by tests/cli/web_dashboard.sh, which
// passes its address in WS_WEB_BASE) in Debian's Chromium: Playwright's own browser
// download cannot work on the build machines.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: 'tests',
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 420_000, // the ASan build on 2 busy cores trains and evaluates several times slower
  expect: { timeout: 30_000 },
  reporter: [['list']],
  outputDir: process.env.WS_WEB_OUT ?? 'test-results',
  use: {
    baseURL: process.env.WS_WEB_BASE,
    browserName: 'chromium',
    launchOptions: { executablePath: process.env.WS_CHROMIUM ?? '/usr/bin/chromium' },
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
  },
});
