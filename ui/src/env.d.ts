// Stylesheets imported for their effect: esbuild puts them into the CSS bundle.
declare module '*.css';
