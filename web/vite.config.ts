// Vite build of the dashboard: Preact (via the preset's JSX), hashed assets under assets/,
// no inline scripts or styles (the server's Content-Security-Policy forbids them).
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2020',
  },
  server: { proxy: { '/v1': 'http://127.0.0.1:8080' } },
});
