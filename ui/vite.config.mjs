// Builds the dashboard (React) into dist/ui, which the control plane serves as static files.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: here,
  base: './',
  plugins: [react()],
  build: { outDir: path.join(here, '..', 'dist', 'ui'), emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1024 },
  // `vite --config ui/vite.config.mjs` during development: the API of a control plane on 15080.
  server: { proxy: { '/api': 'http://127.0.0.1:15080' } },
});
