export function Jobs() {
  return <section class="page"><h1>Jobs</h1></section>;
}
