import { render } from 'preact';
import { App } from './App';
import { connect } from './live';
import { DashboardStore } from './store';
import './styles.css';

const store = new DashboardStore();
connect(store);
render(<App store={store} />, document.getElementById('app')!);
