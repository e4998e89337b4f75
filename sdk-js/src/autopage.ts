/** Call `onChange` whenever a single-page app changes the URL through the History API or back/forward. */
export const watchHistory = (onChange: () => void): void => {
  let last = location.href;
  const check = () => {
    if (location.href != last) {
      last = location.href;
      onChange();
    }
  };
  for (const name of ['pushState', 'replaceState'] as const) {
    const original = history[name];
    history[name] = function (this: History, ...args: Parameters<History['pushState']>) {
      original.apply(this, args);
      check();
    };
  }
  addEventListener('popstate', check);
};
