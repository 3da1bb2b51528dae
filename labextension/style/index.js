import './index.css';
import './jobs.css';
import './courses.css';
