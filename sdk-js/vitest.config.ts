import { defineConfig } from 'vitest/config';

export default defineConfig({
  define: { __VERSION__: '"test"' },
  test: {
    environment: 'happy-dom',
    // The loader snippet adds a <script src>: a test loads the SDK itself, so no file loading.
    environmentOptions: { happyDOM: { settings: { handleDisabledFileLoadingAsSuccess: true } } },
    include: ['test/**/*.test.ts'],
  },
});
