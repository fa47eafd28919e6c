"""Chinese display text for what a 飞手 reads: flight modes, flight events, drone states.

The flight streams keep their English machine codes (``FlightEvent.kind``, PX4 mode names,
the English ``message`` for logs and the API); the CLI translates here at display time.
The pages hold the same labels in ``dispatch/web/static/office.js`` (``Z.FLIGHT_MODE``,
``Z.FLIGHT_EVENT``); tests/flight/test_zh.py keeps the two tables and the event kinds the
code emits in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: PX4 / MAVSDK flight modes (``FlightMode`` names, upper case) and the simulator's short names
FLIGHT_MODE: dict[str, str] = {
    "MISSION": "航线任务", "HOLD": "悬停", "LOITER": "悬停", "RETURN_TO_LAUNCH": "返航", "RTL": "返航",
    "LAND": "降落", "TAKEOFF": "起飞", "OFFBOARD": "外部控制", "MANUAL": "手动", "POSCTL": "定点",
    "POSITION": "定点", "ALTCTL": "定高", "ALTITUDE": "定高", "STABILIZED": "自稳", "ACRO": "特技",
    "READY": "待命", "FOLLOW_ME": "跟随", "PRECISION_LAND": "精准降落", "UNKNOWN": "未知",
}

#: flight event kinds -> the label the 飞手 and the command room read
FLIGHT_EVENT: dict[str, str] = {
    "connected": "已连接", "connect_failed": "连接失败", "preflight_ok": "起飞前检查通过",
    "preflight_failed": "起飞前检查未通过", "geofence_uploaded": "电子围栏已上传", "geofence_failed": "电子围栏上传失败",
    "geofence_missing": "无电子围栏飞行", "mission_uploaded": "航线已上传", "upload_failed": "航线上传失败",
    "sortie_start": "架次开始", "armed": "电机已解锁", "start_failed": "起飞失败", "mission_started": "开始执行航线",
    "item_reached": "到达航点", "mission_complete": "航线完成，返航中", "low_battery": "电量低，返航",
    "failsafe": "触发失控保护", "landed": "已降落", "sortie_done": "架次结束", "sortie_failed": "架次失败",
    "rtl": "返航", "rtl_failed": "返航指令被拒绝", "command": "收到指挥室指令", "hold": "按指挥室指令悬停",
    "command_ignored": "指令未执行", "command_failed": "指令执行失败", "link_lost": "数据链中断",
    "link_waiting": "等待数据链", "link_timeout": "数据链超时，放弃本架次", "link_restored": "数据链恢复",
    "resume_planned": "已规划续飞", "resumed": "已续飞", "resume_failed": "续飞失败", "turnaround": "降落换电",
    "battery_ready": "电池已更换", "battery_not_swapped": "电池未更换", "replanned": "剩余航线已重新规划",
    "replan_refused": "无法重新规划剩余航线", "drone_done": "本机任务结束",
}

#: fleet drone states (flight.fleet.DroneStatus.state) and sortie/drone outcomes
STATE: dict[str, str] = {
    "waiting": "等待", "connecting": "连接中", "preflight": "起飞前检查", "flying": "飞行中", "returning": "返航中",
    "turnaround": "换电中", "done": "完成", "failed": "失败", "aborted": "中止",
}

COMMAND: dict[str, str] = {"rtl": "返航", "hold": "悬停", "resume": "继续任务", "land": "降落"}


def mode_zh(mode: str | None) -> str:
    """A flight mode in Chinese ("MISSION" -> "航线任务"); unknown modes read "其他模式"."""
    return FLIGHT_MODE.get(str(mode or "UNKNOWN").upper(), "其他模式")


def state_zh(state: str | None) -> str:
    return STATE.get(str(state or ""), "其他")


def event_zh(kind: str, data: Mapping[str, Any] | None = None) -> str:
    """One flight event as a Chinese line: the kind's label plus the figures worth showing
    (waypoint numbers 1-based, battery in %, outage in s)."""
    d = data or {}
    s = FLIGHT_EVENT.get(kind, "飞行事件")

    def num(key: str) -> float | None:
        v = d.get(key)
        return v if isinstance(v, int | float) and not isinstance(v, bool) else None

    if kind == "item_reached" and num("item") is not None:
        s += f" {int(num('item')) + 1}" + (f"/{int(num('total'))}" if num("total") is not None else "")
    elif kind in ("low_battery", "preflight_ok", "battery_ready", "battery_not_swapped") and num("battery_pct") is not None:
        s += f"（电量 {num('battery_pct'):.0f}%）"
    elif kind in ("resumed", "resume_planned") and num("from_index") is not None:
        s += f"（自航点 {int(num('from_index')) + 1}）"
    elif kind == "mission_started" and num("start_index"):
        s += f"（自航点 {int(num('start_index')) + 1}）"
    elif kind == "link_restored" and num("outage_s") is not None:
        s += f"（中断 {num('outage_s'):.1f} 秒）"
    elif kind in ("command", "command_failed") and d.get("action"):
        s += "：" + COMMAND.get(str(d["action"]), "其他指令")
    elif kind == "failsafe" and d.get("mode"):
        s += "：" + mode_zh(str(d["mode"]))
    elif kind == "turnaround" and d.get("next_sortie"):
        s += f"，下一架次 {d['next_sortie']}"
    elif kind == "preflight_failed" and isinstance(d.get("problems_zh"), list) and d["problems_zh"]:
        s += "：" + "；".join(str(p) for p in d["problems_zh"])
    elif kind == "preflight_failed" and isinstance(d.get("problems"), list):
        s += f"（{len(d['problems'])} 项）"
    return s
