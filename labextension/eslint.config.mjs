// ESLint for the JupyterLab extension's TypeScript (src/), as JupyterLab's extension template
// (jupyterlab/extension-template, eslint.config.mjs) sets it up: eslint's and typescript-eslint's
// recommended rules, the Jupyter plugin's, and prettier as a rule (its settings: .prettierrc.json).
//
//   npm run lint          fix what can be fixed (prettier, then eslint --fix)
//   npm run lint:check    what tests/test_code_style.py runs: fail on any finding
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';
import prettierRecommended from 'eslint-plugin-prettier/recommended';
import globals from 'globals';
import jupyterPlugin from '@jupyter/eslint-plugin';

export default defineConfig([
  {
    // Build outputs, dependencies, and the extension's Python side; only src/ is ours to lint.
    ignores: [
      'node_modules/**',
      'lib/**',
      '_built/**',
      '**/*.js',
      '**/*.mjs',
      '**/*.d.ts'
    ]
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  jupyterPlugin.configs.recommended,
  // Before our rules, unlike the template: eslint-config-prettier (in it) turns `curly` off, which would
  // silently drop the template's curly: 'all' below.
  prettierRecommended,
  {
    files: ['src/**/*.ts', 'src/**/*.tsx'],
    languageOptions: {
      globals: {
        ...globals.browser,
        ...globals.es2015
      },
      parserOptions: {
        project: 'tsconfig.json',
        tsconfigRootDir: import.meta.dirname,
        sourceType: 'module'
      }
    },
    rules: {
      // The template's choices. Its '@typescript-eslint/quotes' is left out: typescript-eslint 8
      // dropped the formatting rules, and prettier's singleQuote settles quotes anyway.
      '@typescript-eslint/naming-convention': [
        'error',
        {
          selector: 'interface',
          format: ['PascalCase'],
          custom: { regex: '^I[A-Z]', match: true }
        }
      ],
      // A warning in the template; an error here, so that lint:check (--max-warnings 0) and the test
      // name an unused variable instead of letting it pass.
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none' }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-namespace': 'off',
      '@typescript-eslint/no-use-before-define': 'off',
      // The extension ships no translations (its strings are English, like the hub's pages): wrapping
      // every label in trans.__() would translate nothing. Turn it on with a translation domain.
      'jupyter/no-untranslated-string': 'off',
      curly: ['error', 'all'],
      eqeqeq: 'error',
      'prefer-arrow-callback': 'error'
    }
  }
]);
