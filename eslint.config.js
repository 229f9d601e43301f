// @ts-check
import js from '@eslint/js';
import n from 'eslint-plugin-n';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { n },
    rules: {
      // Edges and core: only src/cli/main.ts (via bin/wa.js) decides how the process ends, and only
      // src/terminal/output.ts writes to the terminal. test/unit/layers.test.ts keeps the layers one-way.
      'n/no-process-exit': 'error',
      'no-console': 'error',
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'exit', message: 'return an exit code from the command instead' },
        { object: 'process', property: 'env', message: 'read configuration in src/cli/main.ts and pass it down' },
        { object: 'process', property: 'argv', message: 'only src/cli/main.ts sees argv' },
      ],
    },
  },
  {
    // Baileys costs ~200 ms to load: read-only commands and the CLI edge must never import it at runtime.
    files: [
      'src/cli/**/*.ts',
      'src/terminal/**/*.ts',
      'src/commands/context.ts',
      'src/commands/common.ts',
      'src/commands/status.ts',
      'src/commands/add.ts',
      'src/commands/rm.ts',
      'src/store/**/*.ts',
      // The library entry: `import 'wa'` for useSqliteAuthState loads no Baileys until a socket opens.
      'src/index.ts',
      'src/library/**/*.ts',
    ],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: '@whiskeysockets/baileys',
              allowTypeImports: true,
              message: 'load Baileys lazily, only in commands that open a socket',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', 'test/**/*.ts', 'bench/**/*'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['bin/**/*.js', 'bench/**/*.js', 'test/**/*.js', 'test/**/*.ts', 'eslint.config.js'],
    languageOptions: { globals: globals.node },
  },
  {
    // The pairing page's script runs in the browser, as it is (no build step).
    files: ['src/daemon/page/**/*.js'],
    languageOptions: { globals: globals.browser, sourceType: 'script' },
  },
);
