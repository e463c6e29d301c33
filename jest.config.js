// Jest runs the pure modules of js/ (no JupyterLab imports) through ts-jest, in node.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/js'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }] }
};
