"""Tasks: what is learned and how it is scored (`Task`, `register_task`, `task_class`)."""

from host.tasks.base import Task, TaskData, available_tasks, register_task, task_class

__all__ = ["Task", "TaskData", "available_tasks", "register_task", "task_class"]
