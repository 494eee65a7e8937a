# The custom tasks of the Bansuri manual ("Creating Custom Tasks": the Logging Task and the
# Health Check Task), as the manual writes them. bansuri runs them with
#   {"no-interface": true, "command": "myapp.tasks:LoggingTask"}
# from a working directory that holds this `myapp` package (see tasks.json).
import json
import subprocess
from datetime import datetime

from bansuri.base.task_base import AbstractTask
from bansuri.base.config.task_config import TaskConfig


class LoggingTask(AbstractTask):
    """A simple task that logs to a file."""

    def __init__(self, config: TaskConfig):
        super().__init__(config)
        self.running = False

    def run(self) -> int:
        """Execute the logging task."""
        self.running = True
        try:
            log_file = self.config.logging.stdout_path or "/tmp/task.log"
            message = f"[{datetime.now()}] Task executed: {self.config.identification.name}"

            with open(log_file, "a") as f:
                f.write(message + "\n")

            return 0  # Success
        except Exception as e:
            print(f"Error: {e}")
            return 1  # Failure
        finally:
            self.running = False

    def stop(self) -> None:
        """Stop the task if running."""
        self.running = False


class HealthCheckTask(AbstractTask):
    """Performs system health checks and sends metrics."""

    def __init__(self, config: TaskConfig):
        super().__init__(config)
        self.metrics = {}

    def run(self) -> int:
        """Execute health checks."""
        try:
            # CPU usage
            cpu_result = subprocess.run(
                "grep 'cpu' /proc/stat",
                shell=True,
                capture_output=True,
                text=True
            )

            # Memory usage
            mem_result = subprocess.run(
                "free -b | grep Mem",
                shell=True,
                capture_output=True,
                text=True
            )

            # Disk usage
            disk_result = subprocess.run(
                "df -B1 /",
                shell=True,
                capture_output=True,
                text=True
            )

            self.metrics = {
                "timestamp": datetime.now().isoformat(),
                "cpu": cpu_result.stdout.strip(),
                "memory": mem_result.stdout.strip(),
                "disk": disk_result.stdout.strip()
            }

            # Send metrics to monitoring system
            return self._send_metrics()

        except Exception as e:
            print(f"Health check failed: {e}")
            return 1

    def stop(self) -> None:
        """Clean up health check task."""
        pass

    def _send_metrics(self) -> int:
        """Send metrics to a monitoring backend."""
        # This would integrate with your monitoring system
        # (Prometheus, Grafana, InfluxDB, etc.)
        print(json.dumps(self.metrics))
        return 0
