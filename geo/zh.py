"""Chinese wording of geo's errors and warnings, for the pages a 飞手 reads.

geo's messages stay English (logs, the CLI, tests, the API's ``detail``); the planner page shows
:func:`zh_message` of the same text (the API sends it as ``detail_zh``). A message is made of a
location ("grids.kml: placemark 3 (id G7)") and a reason; both are rewritten phrase by phrase
with the ordered table below, keeping what the user must find in their own file verbatim:
file names, ids, names, coordinates and numbers. A phrase the table does not know stays English,
so a new message is never lost, only untranslated (tests/geo/test_zh.py lists every message
geo raises and fails on English left over).
"""

from __future__ import annotations

import re

_NUM = r"-?[\d.]+(?:e-?\d+)?"

# (pattern, replacement), applied in order. Reasons first (they are longer and may contain
# location words), locations last.
_TABLE: list[tuple[str, str]] = [
    # --- files --------------------------------------------------------------------------------
    # the parser's own English detail is dropped: the line and column are what the user acts on
    (r"line (\d+) column (\d+): invalid JSON: (.*)$", r"第 \1 行第 \2 列：不是有效的 JSON"),
    (r"line (\d+): invalid KML/XML: (.*)$", r"第 \1 行：不是有效的 KML/XML"),
    (r"not UTF-8 text \((.*)\)", r"不是 UTF-8 文本（\1）"),
    (r"expected a GeoJSON FeatureCollection of Polygon/MultiPolygon features",
     "应为由 Polygon/MultiPolygon 要素组成的 GeoJSON FeatureCollection"),
    (r"not a GeoJSON Feature object", "不是 GeoJSON Feature 对象"),
    (r"geometry type ('[^']*'|\S+) is not Polygon or MultiPolygon", r"几何类型 \1 不是面（Polygon/MultiPolygon）"),
    (r"malformed coordinates \((.*)\)$", r"坐标格式错误（\1）"),
    (r"bad coordinate (.*) \(expected lon,lat\[,alt\]\)", r"坐标 \1 无效（应为 经度,纬度[,高度]）"),
    (r"a (Point|LineString), not a polygon — skipped", r"是\1（点或线），不是面，已跳过"),
    (r"truncated \.dbf file", ".dbf 文件不完整"),
    (r"truncated at record (\d+)", r"在第 \1 条记录处截断"),
    (r"not an ESRI shapefile \(bad header\)", "不是 ESRI shapefile（文件头错误）"),
    (r"shapefile holds shape type (\d+), expected polygons \(5, 15 or 25\)",
     r"shapefile 的几何类型为 \1，应为面（5、15 或 25）"),
    (r"cannot parse the projection: (.*)$", r"无法解析投影：\1"),
    (r"not a zip archive", "不是 zip 压缩包"),
    (r"the KMZ holds no \.kml document", "KMZ 中没有 .kml 文档"),
    (r"the KMZ holds several \.kml documents and no doc\.kml: (.*)$", r"KMZ 中有多个 .kml 文档且没有 doc.kml：\1"),
    (r"expected exactly one \.shp in the zip, found (.*)$", r"zip 中应恰有一个 .shp，实际找到 \1"),
    (r"unknown grid file type ('[^']*'); use .*$",
     r"不支持的网格文件类型 \1；请使用 .geojson/.json、.kml/.kmz 或打包的 shapefile（.zip）"),
    (r"no such file", "文件不存在"),
    (r"is a directory, expected a grid file", "是文件夹，应为网格文件"),
    (r"cannot read: (.*)$", r"无法读取：\1"),
    (r"unreadable (\w+) file: (.*)$", r"无法读取的\1文件：\2"),
    (r"missing (grid|zone) id \(property one of ([^)]*)\); pass --id-field NAME",
     r"缺少\1编号（属性 \2 之一）；请用 --id-field 指定编号字段"),
    (r"missing (grid|zone) id \(property ([^)]*)\); pass --id-field NAME",
     r"缺少\1编号（属性 \2）；请用 --id-field 指定编号字段"),
    (r"duplicate (grid|zone) id ('[^']*'|\S+) \(first used by ([^)]*)\)", r"\1编号 \2 重复（首次出现于 \3）"),
    (r"no (grid|zone) features found \((\d+) skipped as bad: (.*)\)$", r"没有可用的\1要素（\2 个因错误被跳过：\3）"),
    (r"no (grid|zone) features found", r"没有可用的\1要素"),
    (r"^skipped: ", "已跳过："),
    # --- coordinate systems -------------------------------------------------------------------
    (r"declares crs ('[^']*'), which SkyGrid does not read; use WGS-84.*$",
     r"声明的坐标系 \1 SkyGrid 无法读取；请使用 WGS-84、GCJ-02 或 BD-09"),
    (r"the file declares its coordinates as (\S+) but (\S+) (\S+) was given; drop .*$",
     r"文件声明坐标系为 \1，但参数 \2 给的是 \3；请去掉该参数或改正文件中的 crs"),
    (r"the \.prj says WGS-84/CGCS2000 but (\S+) (\S+) was given; reading the coordinates as (\S+)",
     r".prj 声明 WGS-84/CGCS2000，但参数 \1 给的是 \2；按 \3 读取坐标"),
    (r"the file does not say which coordinate system it uses; .*$",
     "文件未声明坐标系：请选择 WGS-84（GPS、QGIS、天地图）、GCJ-02（高德/腾讯导出）或 BD-09（百度）"),
    (r"(\S+) ('[^']*'): expected one of (.*)$", r"\1 \2 无效：应为 \3 之一"),
    (r"unknown CRS ('[^']*'); expected one of (.*)$", r"未知坐标系 \1；应为 \2 之一"),
    # --- geometry -----------------------------------------------------------------------------
    (r"coordinates contain NaN or infinity", "坐标含 NaN 或无穷大"),
    (r"coordinate (\[[^\]]*\]) out of range \(lon must be within ±180, lat within ±90\)",
     r"坐标 \1 超出范围（经度应在 ±180 内，纬度应在 ±90 内）"),
    (r" — lat/lon look swapped; GeoJSON/KML order is \[lon, lat\]", "——经纬度似乎写反了，GeoJSON/KML 的顺序是 [经度, 纬度]"),
    (r"coordinates look like \[lat, lon\] \(e\.g\. (\[[^\]]*\])\); GeoJSON/KML order is \[lon, lat\] — .*$",
     r"坐标似乎是 [纬度, 经度]（如 \1）；GeoJSON/KML 的顺序是 [经度, 纬度]，网格位置不对时请交换两列"),
    (r"empty polygon \(no coordinates\)", "空多边形（没有坐标）"),
    (r"empty polygon \(zero area\)", "空多边形（面积为零）"),
    (r"ring (\d+) of polygon (\d+) has (\d+) points; a ring needs at least 3",
     r"第 \2 个多边形的第 \1 个环只有 \3 个点，至少需要 3 个"),
    (r"invalid polygon (\d+): ", r"第 \1 个多边形无效："),
    (r"invalid multipolygon: ", "多部件多边形无效："),
    (r"Self-intersection\[([^\]]*)\]", r"自相交于 [\1]"),
    (r"Ring Self-intersection\[([^\]]*)\]", r"环自相交于 [\1]"),
    (r"Too few points\[([^\]]*)\]", r"点数过少 [\1]"),
    (r"Interior is disconnected\[([^\]]*)\]", r"内部不连通 [\1]"),
    (r"Hole lies outside shell\[([^\]]*)\]", r"内环在外环之外 [\1]"),
    (r"Nested holes\[([^\]]*)\]", r"内环嵌套 [\1]"),
    (r"Nested shells\[([^\]]*)\]", r"外环嵌套 [\1]"),
    (r"\(lon lat\); fix the outline \(e\.g\. QGIS 'Fix geometries'\)",
     "（经度 纬度）；请修正边界（如 QGIS 的“修复几何”）"),
    (r"\(lon lat, (\w+) as in the file\); fix the outline \(e\.g\. QGIS 'Fix geometries'\)",
     r"（经度 纬度，文件中的 \1 坐标）；请修正边界（如 QGIS 的“修复几何”）"),
    (r"\(lon lat(?:, (\w+) as in the file)?\)$", r"（经度 纬度 \1）"),
    # --- planning -----------------------------------------------------------------------------
    (r"give either an altitude or a GSD, not both", "高度与 GSD 只能给一个"),
    (r"GSD must be > 0 cm/px, got (\S+)", r"GSD 必须大于 0 厘米/像素，实际为 \1"),
    (r"altitude must be > 0 m, got (\S+)", r"高度必须大于 0 米，实际为 \1"),
    (r"no place to launch from: every grid lies inside a no-fly zone; give --home",
     "没有可起飞的位置：所有网格都在禁飞区内；请指定起飞点"),
    (r"cannot join its survey lines without leaving the grid or entering a no-fly zone .*$",
     "无法在不离开网格、不进入禁飞区的情况下连接航线（通道比安全间距还窄？）；可调整边缘余量"),
    (r"no grids to plan", "没有要规划的网格"),
    (r"drones must be >= 1, got (\S+)", r"无人机数量至少为 1，实际为 \1"),
    (r"speed must be > 0 m/s, got (\S+)", r"速度必须大于 0 米/秒，实际为 \1"),
    (r"reserve must be in \[0, 1\), got (\S+)", r"电量余量必须在 [0, 1) 内，实际为 \1"),
    (r"edge margin must be >= 0 m, got (\S+)", r"边缘余量必须 ≥ 0 米，实际为 \1"),
    (rf"altitude ({_NUM}) m AGL is above the (\d+) m limit; .*$",
     r"高度 \1 米超过 \2 米的限高；请降低高度（或放宽 GSD），持有空域批复时可勾选已获空域授权"),
    (r"home (.*) is inside no-fly zone (\S+) \((.*)\) or its buffer$", r"起飞点 \1 位于禁飞区 \2（\3）或其缓冲区内"),
    (r"nothing is left to fly(?=; drop it)", "没有可飞的部分"),
    (r"at most (\d+%) is allowed \(--max-no-fly-fraction\); drop the limit to fly the remaining (\d+%)",
     r"最多允许 \1（--max-no-fly-fraction）；去掉该限制可飞其余 \2"),
    (r"lies (\d+%) inside no-fly zone (\S+) \((.*), buffer (\S+) m\): (.*); drop it from the patrol .*$",
     r"有 \1 位于禁飞区 \2（\3，缓冲 \4 米）内：\5；请从本次巡查中去掉该网格或改为人工巡查"),
    (r"(\d+%) lies inside no-fly zone (\S+) \((.*), buffer (\S+) m\); only the remaining (\d+%) is planned, .*$",
     r"有 \1 位于禁飞区 \2（\3，缓冲 \4 米）内；只规划其余 \5，禁飞部分作为空洞绕开，未成像部分请人工巡查"),
    (rf"({_NUM}) m² \((\d+%)\) overlaps no-fly zone (\S+) \((.*), buffer (\S+) m\); planned around it as a hole .*$",
     r"有 \1 平方米（\2）与禁飞区 \3（\4，缓冲 \5 米）重叠；已作为空洞绕开，该区域不成像"),
    (r"endurance (\d+) s with (\d+%) reserve leaves no time after climb/descent",
     r"续航 \1 秒、预留 \2 电量后，扣除爬升和下降已无作业时间"),
    (r"(\d+) part\(s\) too small or narrow for a survey line were skipped", r"\1 个部分过小或过窄，无法布设航线，已跳过"),
    (r"nothing to fly \(no part wider than the minimum line\)", "没有可飞的部分（没有比最小航线更宽的部分）"),
    (r"unreachable from home without crossing a no-fly zone", "从起飞点出发必须穿越禁飞区，无法到达"),
    (rf"({_NUM}) km from home is beyond reach of a (\d+) min battery with (\d+%) reserve; move the launch point",
     r"距起飞点 \1 公里，超出 \2 分钟电池（预留 \3）的航程；请移动起飞点"),
    (rf"({_NUM}) min exceeds the ({_NUM}) min budget", r"\1 分钟，超过 \2 分钟的续航预算"),
    # --- plan files and exports ---------------------------------------------------------------
    (r"field ('[^']*'): (.*), got (.*)$", r"字段 \1：\2，实际为 \3"),
    (r"field 'schema' must be ('[^']*'), got (.*)$", r"字段 'schema' 应为 \1，实际为 \2"),
    (r"unsupported plan schema ('[^']*') \(this SkyGrid reads ('[^']*')\)", r"不支持的方案格式 \1（本版本读取 \2）"),
    (r"missing field ('[^']*')", r"缺少字段 \1"),
    (r"cannot read plan: (.*)$", r"无法读取方案：\1"),
    (r"camera ('[^']*') has no DJI WPML route support .*$",
     r"相机 \1 不支持大疆 WPML 航线（Pilot 2 / 司空 2 可飞 M3E、M30、M300+P1）；请换用这些机型的相机预设"),
    (r"no waypoints to export", "没有可导出的航点"),
    (r"the plan has no sorties: nothing to export", "方案中没有架次，无可导出内容"),
    # --- locations (last) ---------------------------------------------------------------------
    (r"\bfeature (\d+)", r"第 \1 个要素"),
    (r"\bplacemark (\d+)", r"第 \1 个地标"),
    (r"\brecord (\d+)", r"第 \1 条记录"),
    (r"\(id ([^)]*)\)", r"（编号 \1）"),
    (r"\((grid|zone) ([^)]*)\)", r"（\1 \2）"),
    (r"\bgrid (\S+) \(([^)]*)\):", r"网格 \1（\2）："),
    (r"\bgrid (\S+):", r"网格 \1："),
    (r"\bsortie (\S+):", r"架次 \1："),
    (r"\bgrid\b", "网格"),
    (r"\bzone\b", "禁飞区"),
    (r": ", "："),
]
_COMPILED = [(re.compile(p), r) for p, r in _TABLE]
# "grid"/"zone" captured into a Chinese phrase above (e.g. 缺少grid编号)
_KIND = re.compile(r"(?<=[\u4e00-\u9fff])(?:grid|zone)|(?:grid|zone)(?=[\u4e00-\u9fff])")
_KIND_ZH = {"grid": "网格", "zone": "禁飞区"}


def zh_message(message: str) -> str:
    """The Chinese wording of one geo error or warning (same facts, same identifiers)."""
    out = message
    for pat, rep in _COMPILED:
        out = pat.sub(rep, out)
    out = _KIND.sub(lambda m: _KIND_ZH[m.group(0)], out)
    out = re.sub(r"\s+（", "（", re.sub(r"：\s+", "：", out))
    return out.replace("（经度 纬度 ）", "（经度 纬度）")
