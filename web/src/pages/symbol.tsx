export function SymbolView({ symbol }: { symbol: string }) {
  return <section class="page"><h1>{symbol}</h1><div data-testid="chart" /></section>;
}
