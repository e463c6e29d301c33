// SVG files are bundled as strings (the builder's webpack config loads *.svg as source)
declare module '*.svg' {
  const value: string;
  export default value;
}
