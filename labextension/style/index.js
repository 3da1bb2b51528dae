import './index.css';
import './jobs.css';
