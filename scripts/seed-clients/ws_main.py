# test_websocket.py
import asyncio
import websockets
import json

async def main():
    async with websockets.connect("ws://localhost:8000/ws/chat") as ws:
        await ws.send(json.dumps({"message": "Тест"}))
        async for msg in ws:
            data = json.loads(msg)
            print(f"{data['type']}: {data.get('content', '')}")
            if data['type'] == 'done':
                break

asyncio.run(main())
